"""Share of the GPU lane's time spent computing: warm worker versus a fresh process per job.

Usage (from the repository root)::

    .venv/bin/python benchmarks/gpu_lane.py [--jobs 3] [--seconds 4] [--segment-s 4] [--threads 2] [--device cpu]

Builds random-weight models of the real architectures in their real checkpoint formats (a 4-model
``htdemucs_ft`` bag of HTDemucs, tests/demucs_fixture.py; Audiobox Aesthetics, tests/aesthetics_fixture.py),
then runs ``--jobs`` separation jobs and ``--jobs`` aesthetics jobs of ``--seconds`` s tracks one after
another, as the GPU lane runs them:

- warm: through the GPU lane of a mirflow worker (mirflow.client.run_in_worker), models loaded once;
- fresh: each job in its own ``scripts/rule_job.py`` process (``workers: false``; today's main does the
  same work per job: start Python, import torch, load the model, compute).

Compute is what the jobs record as model time (``separation_s`` in stems/separation.json, ``inference_s``
in the aesthetics ``_meta``); lane time is each job's wall time as its client sees it. "warm" excludes the
first job of each model (its load); "all" includes it. On a CPU the models are slow, so the fraction is
an upper bound of what a GPU reaches with the same per-job costs; ``--device cuda`` measures on a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests")]

from mirflow.client import lane_paths, run_in_worker  # noqa: E402

CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def models(folder: Path) -> tuple[list[str], str]:
    from aesthetics_fixture import write_random_aesthetics_checkpoint
    from demucs_fixture import write_random_htdemucs
    from mirflow.separation import bag_definition

    bag = [str(write_random_htdemucs(folder / "demucs", signature=sig, seed=i))
           for i, sig in enumerate(bag_definition("htdemucs_ft")["models"])]
    return bag, str(write_random_aesthetics_checkpoint(folder / "aesthetics" / "checkpoint.pt"))


def jobs(root: Path, n: int, seconds: float, bag: list[str], checkpoint: str, args) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        audio = root / "music" / f"t{i}.flac"
        audio.parent.mkdir(parents=True, exist_ok=True)
        sf.write(audio, 0.1 * rng.standard_normal((int(seconds * 44100), 2)).astype(np.float32), 44100)
        track = root / "results" / f"t{i}"
        sep = {**CONFIG["separation"], "model": "htdemucs_ft", "device": args.device, "segment_s": args.segment_s}
        out.append({"entry": "mirflow.jobs:separate_job", "rule": "separate_stems", "lane": "gpu",
                    "input": [["audio", str(audio)], *[[f"model_file_{k}", p] for k, p in enumerate(bag)]],
                    "output": [[s, str(track / "stems" / f"{s}.flac")] for s in ("drums", "bass", "other", "vocals")]
                    + [["meta", str(track / "stems" / "separation.json")]],
                    "params": {"settings": sep}, "wildcards": {"track": f"t{i}"},
                    "log": [str(track / "logs" / "separate_stems.log")], "threads": args.threads})
        out.append({"entry": "mirflow.runner:run_family_job", "rule": "aesthetics", "lane": "gpu",
                    "input": [["audio", str(audio)], ["model_file_0", checkpoint]],
                    "output": [[None, str(track / "features" / "aesthetics.json")]],
                    # config.yaml omits the typed aesthetics section (AestheticsParams defaults it)
                    "params": {"family": "aesthetics",
                               "settings": {**CONFIG.get("aesthetics", {}), "device": args.device}},
                    "wildcards": {"track": f"t{i}"}, "log": [str(track / "logs" / "aesthetics.log")],
                    "threads": args.threads})
    return out


def compute_s(job: dict) -> float:
    if job["rule"] == "separate_stems":
        return json.loads(Path(job["output"][-1][1]).read_text())["separation_s"]
    return json.loads(Path(job["output"][0][1]).read_text())["_meta"]["details"]["inference_s"]


def run(mode: str, job_list: list[dict], root: Path) -> list[tuple[str, float, float]]:
    conf = {"enabled": True, "dir": str(root / f"state-{mode}"), "idle_exit_s": 60, "timeout_s": {},
            "snakemake_pid": os.getpid()}
    rows = []
    for job in job_list:
        request = {**job, "cwd": str(root), "env": dict(os.environ), "owner_pid": os.getpid()}
        started = time.perf_counter()
        if mode == "warm":
            status = run_in_worker(request, conf)
        else:
            env = {**os.environ, "MIRFLOW_WORKERS": json.dumps({"enabled": False})}
            spec = {k: v for k, v in job.items() if k not in ("log", "threads")}
            # -S as in the workflow's shell command: the client needs no site-packages (and an installed mirflow
            # of another version must not shadow this checkout's).
            status = subprocess.run([sys.executable, "-S", str(REPO / "scripts" / "rule_job.py"), json.dumps(spec),
                                     job["log"][0], str(job["threads"])], env=env, cwd=root).returncode
        wall = time.perf_counter() - started
        if status != 0:
            raise RuntimeError(f"{mode} {job['rule']} failed: see {job['log'][0]}")
        rows.append((job["rule"], wall, compute_s(job)))
        print(f"  {mode} {job['rule']:15s} {job['wildcards']['track']}: wall {wall:6.1f} s, "
              f"compute {rows[-1][2]:6.1f} s", flush=True)
    if mode == "warm":
        log = Path(lane_paths(conf["dir"], "gpu")["log"]).read_text()
        print("  model loads in the warm lane:", [line.split("model-load ")[1].split(" path=")[0]
                                                  for line in log.splitlines() if "model-load" in line])
        pid = Path(lane_paths(conf["dir"], "gpu")["pid"])
        if pid.exists():
            os.kill(int(pid.read_text()), 15)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=3, help="tracks (each: one separation, one aesthetics job)")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--segment-s", type=float, default=4.0, help="Demucs segment (<= 7.8 s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", default="warm,fresh", help="comma-separated: warm, fresh")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mirflow-gpulane-"))
    bag, checkpoint = models(root / "models")
    job_list = jobs(root, args.jobs, args.seconds, bag, checkpoint, args)
    print(f"{args.jobs} tracks of {args.seconds:g} s, htdemucs_ft (4 random HTDemucs) + Audiobox (random), "
          f"device {args.device}, {args.threads} threads; "
          f"machine load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    results = {mode: run(mode, job_list, root) for mode in args.modes.split(",")}
    print("| mode | jobs | lane wall s | compute s | compute share (all jobs) "
          "| compute share (warm: first job per model excluded) |")
    print("|---|---|---|---|---|---|")
    for mode, rows in results.items():
        wall, comp = sum(r[1] for r in rows), sum(r[2] for r in rows)
        later = [r for r in rows if r is not next(x for x in rows if x[0] == r[0])]
        wall_l, comp_l = sum(r[1] for r in later), sum(r[2] for r in later)
        print(f"| {mode} | {len(rows)} | {wall:.1f} | {comp:.1f} | {comp / wall:.1%} | {comp_l / wall_l:.1%} |")


if __name__ == "__main__":
    main()
