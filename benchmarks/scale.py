"""Workflow scale: dry-run time and memory, no-op rerun, scheduler and job throughput over fake corpora.

A fake corpus of N tracks is N hard links of one short WAV (``<workdir>/corpora/<N>/music/aNNN/tNNNNN.wav``,
100 tracks per folder), so building 100,000 tracks costs seconds and no disk. For each N this prints:

* ``index``: the first parse that builds the track index (full scan, every header read), then a re-parse
  (index refreshed: folders and files only stat'ed) and a trusted parse (``MIRFLOW_TRUST_TRACK_INDEX=1``,
  the input folder not touched), each as the wall time of ``snakemake --list-rules`` (a parse without a DAG);
* ``dry-run``: ``snakemake -n`` on an empty results folder: wall time, peak memory of the Snakemake process
  tree (RSS summed over the process and its children, sampled every 0.1 s), job count;
* ``no-op``: every output created empty in DAG order (with ``--touch``, which also writes Snakemake's
  records, for N <= ``--touch-max``), then ``snakemake`` again: wall time and peak memory ("Nothing to be done");
* ``exec``: a real ``--cores 1`` run of ``--exec-n`` tracks with one cheap family (``metadata``, no crops,
  no corpus report): jobs per second, and per-job overhead = (wall - dry-run wall - compute recorded in
  ``_meta.wall_time_s``) / jobs.

Usage (from the repository root; takes minutes per N on 2 cores)::

    python benchmarks/scale.py --n 1000 10000 --dry-only 100000 --exec-n 40
    python benchmarks/scale.py --n 1000 --extra="--persistence-backend db"      # measure one lever

``--extra`` is passed to every Snakemake call; ``--batch i/n`` adds ``batch=i/n`` to ``--config`` (the
batching driver's per-batch subset).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
PER_FOLDER = 100
LINKS_PER_SOURCE = 50_000
DIRECTORY_OUTPUTS = ("crops", "embeddings")


def build_corpus(root: Path, n: int, seconds: float = 5.0, sample_rate: int = 44100) -> Path:
    """``root/music`` with ``n`` tracks, hard links of one ``seconds``-long 16-bit stereo WAV (kept if present)."""
    music = root / "music"
    marker = root / f".complete-{n}"
    if marker.exists():
        return music
    shutil.rmtree(root, ignore_errors=True)
    music.mkdir(parents=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
    for i in range(n):
        if i % LINKS_PER_SOURCE == 0:  # file systems cap the links of one file (ext4: 65,000)
            source = root / f"source{i // LINKS_PER_SOURCE}.wav"
            sf.write(source, np.stack([tone, tone], axis=1), sample_rate, subtype="PCM_16")
        folder = music / f"a{i // PER_FOLDER:04d}"
        if i % PER_FOLDER == 0:
            folder.mkdir()
        os.link(source, folder / f"t{i:06d}.wav")
    # Files and folders dated 10 s back: a scan right after would treat them as modified during it ("racy").
    past = time.time() - 10
    for folder in [music, *music.iterdir()]:
        os.utime(folder, (past, past))
    for i in range(0, n, LINKS_PER_SOURCE):
        os.utime(root / f"source{i // LINKS_PER_SOURCE}.wav", (past, past))  # hard links share the time
    marker.touch()
    return music


def prepare_workdir(root: Path, config_overrides: str = "") -> Path:
    """A working folder with a copy of config/ (Snakemake reads config/config.yaml relative to it)."""
    wd = root / "work"
    shutil.rmtree(wd, ignore_errors=True)
    wd.mkdir(parents=True)
    shutil.copytree(REPO / "config", wd / "config")
    (wd / "models").mkdir()
    if config_overrides:
        (wd / "config" / "bench.yaml").write_text(config_overrides)
    os.symlink(root / "music", wd / "music")
    return wd


class PeakMemory:
    """Peak RSS (bytes) of a process and all its descendants, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.peak = 0
        self._proc = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                procs = [self._proc, *self._proc.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            self._stop.wait(self._interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


#: Snakemake's entry point, with the touch executor's 0.1 s sleep per job removed: ``--touch`` then writes the
#: records of every job (the state a real run leaves) at the scheduler's own speed. Used for ``--touch`` only.
FAST_TOUCH = ("import sys, snakemake.executors.touch as t; t.Executor.SLEEPING_TIME = 0; "
              "from snakemake.cli import main; sys.argv[0] = 'snakemake'; main()")


def run_snakemake(wd: Path, args: list[str], extra: list[str], config: list[str], env: dict | None = None,
                  log_name: str = "snakemake") -> dict:
    """Run Snakemake in ``wd``; wall time, peak memory, return code; stdout/stderr kept in ``wd/<log_name>.log``."""
    configfiles = ["config/config.yaml"] + (["config/bench.yaml"] if (wd / "config" / "bench.yaml").exists() else [])
    entry = ["-c", FAST_TOUCH] if "--touch" in args else ["-m", "snakemake"]
    cmd = [sys.executable, *entry, "-s", str(SNAKEFILE), "--cores", "2", *args, *extra,
           "--configfile", *configfiles, "--config", "input_dir=music", "results_dir=results", *config]
    log_path = wd / f"{log_name}.log"
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=wd, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(REPO / "scripts"), **(env or {})})
        mem = PeakMemory(proc.pid)
        rc = proc.wait()
    wall = time.perf_counter() - started
    peak = mem.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = log_path.read_text(errors="replace")
    if rc != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed ({rc}); see {log_path}:\n{text[-3000:]}")
    return {"wall_s": wall, "cpu_s": cpu, "peak_gb": peak / 1e9, "log": text, "cmd": shlex.join(cmd)}


def job_count(text: str) -> int:
    match = re.search(r"^total\s+(\d+)", text, re.M)
    return int(match.group(1)) if match else 0


def create_outputs(wd: Path, dry_run_log: str) -> int:
    """Create every output a dry run listed, empty, with mtimes in job order (inputs before outputs)."""
    stamp = time.time() - 30  # after the inputs (built earlier), before now
    outputs = []
    for line in dry_run_log.splitlines():
        line = line.strip()
        if line.startswith("output:"):
            # Snakemake marks flagged outputs, e.g. "features/loudness.json (update)": the file is without it.
            outputs.extend(re.sub(r" \((update|temp|protected)\)$", "", p.strip())
                           for p in line[len("output:"):].split(", "))
    # Dry runs list jobs in no fixed order: order by stage (features, grids, .INFO, crops, corpus outputs).
    def stage(path: str) -> int:
        if "/stats/" in path or "/sat_" in path or "/audiocraft/" in path:
            return 4
        if path.endswith("/crops"):
            return 3
        if path.endswith(".INFO"):
            return 2
        return 1 if "/features/captions" not in path else 1.5
    for path in sorted(set(outputs), key=stage):
        target = wd / path
        if target.name in DIRECTORY_OUTPUTS:
            target.mkdir(parents=True, exist_ok=True)
            ts = target / ".snakemake_timestamp"
            ts.touch()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
            ts = target
        os.utime(ts, (stamp + stage(path), stamp + stage(path)))
    return len(set(outputs))


def recorded_compute_s(results: Path) -> float:
    total = 0.0
    for path in results.glob("**/features/*.json"):
        total += json.loads(path.read_text())["_meta"]["wall_time_s"]
    return total


def measure(root: Path, n: int, args: argparse.Namespace, dry_only: bool, parse_only: bool = False) -> dict:
    music = build_corpus(root / "corpora" / str(n), n)
    corpus = music.parent
    extra = shlex.split(args.extra)
    config = [f"batch={args.batch}"] if args.batch else []
    out: dict = {"n": n}
    wd = prepare_workdir(corpus)
    # Parse only (no DAG): first parse builds the index, the next ones refresh it or trust it.
    for key, name, env in (("parse_first", "parse1", None), ("parse_again", "parse2", None),
                           ("parse_trusted", "parse3", {"MIRFLOW_TRUST_TRACK_INDEX": "1"})):
        run = run_snakemake(wd, ["--list-rules"], extra, config, log_name=name, env=env)
        out[f"{key}_s"], out[f"{key}_cpu_s"] = run["wall_s"], run["cpu_s"]
    out["index_lines"] = [line for name in ("parse1", "parse2", "parse3")
                          for line in (wd / f"{name}.log").read_text().splitlines() if "track index" in line]
    if parse_only:
        print(f"  N={n}: parse {out['parse_first_s']:.1f} / {out['parse_again_s']:.1f} / "
              f"{out['parse_trusted_s']:.1f} s", flush=True)
        return out
    dry = run_snakemake(wd, ["-n"], extra, config, log_name="dryrun")
    out.update(dry_s=dry["wall_s"], dry_cpu_s=dry["cpu_s"], dry_gb=dry["peak_gb"], jobs=job_count(dry["log"]))
    print(f"  N={n}: dry-run {dry['wall_s']:.1f} s, {dry['peak_gb']:.2f} GB, {out['jobs']} jobs", flush=True)
    if dry_only:
        return out
    created = create_outputs(wd, dry["log"])
    if n <= args.touch_max:
        touch = run_snakemake(wd, ["--touch"], extra, config, log_name="touch")
        out.update(touch_s=touch["wall_s"], touch_jobs_per_s=out["jobs"] / touch["wall_s"])
    noop = run_snakemake(wd, [], extra, config, log_name="noop")
    if "Nothing to be done" not in noop["log"]:
        raise RuntimeError(f"the no-op rerun had work to do: see {wd}/noop.log")
    out.update(outputs_created=created, noop_s=noop["wall_s"], noop_cpu_s=noop["cpu_s"], noop_gb=noop["peak_gb"],
               noop_records=n <= args.touch_max)
    return out


def measure_exec(root: Path, n: int, extra: list[str]) -> dict:
    """A real ``--cores 1`` run of one cheap family over ``n`` tracks."""
    music = build_corpus(root / "corpora" / f"exec{n}", n)
    families = "\n".join(f"  {name}: {'true' if name == 'metadata' else 'false'}" for name in _family_names())
    wd = prepare_workdir(music.parent, f"families:\n{families}\ncrops: {{enabled: false}}\n")
    dry = run_snakemake(wd, ["-n", "--quiet"], extra, [], log_name="exec_dry")
    target = ["--cores", "1"] + [f"results/a{i // PER_FOLDER:04d}/t{i:06d}/features/metadata.json"
                                 for i in range(n)]
    run = run_snakemake(wd, target, extra, [], log_name="exec_run")
    jobs = n
    compute = recorded_compute_s(wd / "results")
    return {"exec_tracks": n, "exec_jobs": jobs, "exec_wall_s": run["wall_s"], "exec_dry_s": dry["wall_s"],
            "exec_compute_s": compute, "jobs_per_s": jobs / run["wall_s"],
            "overhead_s": (run["wall_s"] - dry["wall_s"] - compute) / jobs}


def _family_names() -> list[str]:
    sys.path.insert(0, str(REPO / "scripts"))
    from mirflow.registry import FAMILIES

    return list(FAMILIES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="*", default=[1000, 10000], help="corpus sizes (full measurement)")
    parser.add_argument("--dry-only", type=int, nargs="*", default=[], help="corpus sizes for the dry run only")
    parser.add_argument("--parse-only", type=int, nargs="*", default=[], help="corpus sizes for the parse only")
    parser.add_argument("--exec-n", type=int, default=40, help="tracks of the real run (0: skip)")
    parser.add_argument("--touch-max", type=int, default=2000,
                        help="largest N whose no-op rerun gets Snakemake's records via --touch")
    parser.add_argument("--workdir", default="/tmp/mirflow-scale", help="corpora and runs (kept for reuse)")
    parser.add_argument("--extra", default="", help="extra Snakemake options for every call")
    parser.add_argument("--batch", default="", help="config batch=i/n (the batching driver's subset)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    root = Path(args.workdir)
    rows = [measure(root, n, args, dry_only=False) for n in args.n]
    rows += [measure(root, n, args, dry_only=True) for n in args.dry_only]
    rows += [measure(root, n, args, dry_only=True, parse_only=True) for n in args.parse_only]
    execution = measure_exec(root, args.exec_n, shlex.split(args.extra)) if args.exec_n else {}
    print(f"\nmirflow scale benchmark (extra: '{args.extra}', batch: '{args.batch or 'all'}'; "
          f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: CPU s = user + system "
          "of the Snakemake process tree, wall s include waiting for a busy machine)")
    columns = [("tracks", "n", "{:,}"), ("jobs", "jobs", "{:,}"), ("first parse s", "parse_first_s", "{:.1f}"),
               ("re-parse s", "parse_again_s", "{:.1f}"), ("re-parse CPU s", "parse_again_cpu_s", "{:.1f}"),
               ("trusted parse s", "parse_trusted_s", "{:.1f}"), ("dry-run s", "dry_s", "{:.1f}"),
               ("dry-run CPU s", "dry_cpu_s", "{:.1f}"), ("dry-run GB", "dry_gb", "{:.2f}"),
               ("no-op rerun s", "noop_s", "{:.1f}"), ("no-op CPU s", "noop_cpu_s", "{:.1f}"),
               ("no-op GB", "noop_gb", "{:.2f}"),
               ("--touch jobs/s", "touch_jobs_per_s", "{:.1f}")]
    print("| " + " | ".join(c[0] for c in columns) + " |")
    print("|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(fmt.format(r[key]) if key in r else "-" for _, key, fmt in columns) + " |")
    for r in rows:
        for line in r.get("index_lines", []):
            print(f"  N={r['n']:,}: {line.strip()}")
    if execution:
        print(f"\nreal run, --cores 1, {execution['exec_jobs']} metadata jobs: {execution['exec_wall_s']:.1f} s "
              f"(dry run {execution['exec_dry_s']:.1f} s, compute in _meta {execution['exec_compute_s']:.1f} s): "
              f"{execution['jobs_per_s']:.2f} jobs/s, per-job overhead {execution['overhead_s']:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "exec": execution, "extra": args.extra}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
