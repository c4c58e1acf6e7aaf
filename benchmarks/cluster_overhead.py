"""Scheduler overhead of the SLURM path: the SLURM test's corpus run locally and through a private SLURM.

Usage (from the repository root, as root, with the SLURM test's Debian packages installed)::

    .venv/bin/python benchmarks/cluster_overhead.py [--demo]

Starts a single-node SLURM (tests/slurm/start.sh), builds the corpus of tests/slurm/test_slurm.py (a track with
stems and a loose file, 3 s each) twice, runs it with ``--cores 2`` locally and with
``--workflow-profile workflow/profiles/slurm`` (profile defaults), and prints each run's wall time, the head
process's peak memory and the number of SLURM submissions; the overhead per track is the difference of the wall
times over the 2 tracks. Stops the SLURM afterwards. ``--demo`` runs the demo corpus instead (``make demo``; 6
tracks, one of them "Café Waltz, D major") with the repository's config and ``config/demo.yaml``, and compares
every .INFO (tracks and crops) of the two runs, every key not starting with ``_``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "slurm"), str(REPO / "tests"), str(REPO / "scripts")]

import test_slurm as slurm_test  # noqa: E402  (the test's corpus and command line, not a copy of them)


def demo_cmd(wd: Path, profile: bool) -> list[str]:
    """The demo with the repository's config, as `make run` configures it (models from the repository)."""
    shutil.copytree(REPO / "config", wd / "config")
    prof = ["--workflow-profile", str(slurm_test.PROFILE)] if profile else []
    return [sys.executable, "-m", "snakemake", "-s", str(slurm_test.SNAKEFILE), *prof, "--cores", "2",
            "--configfile", "config/config.yaml", "config/demo.yaml",
            "--config", f"input_dir={REPO / 'demo'}", "results_dir=results", f"models_dir={REPO / 'models'}"]


def info_values(wd: Path) -> dict[str, dict]:
    """Every .INFO under results/ (tracks and crops): its keys not starting with "_" (provenance names paths
    and times)."""
    return {str(p.relative_to(wd)): {k: v for k, v in json.loads(p.read_text(encoding="utf-8")).items()
                                     if not k.startswith("_")}
            for p in sorted((wd / "results").rglob("*.INFO"))}


def run(wd: Path, env: dict, profile: bool, demo: bool = False) -> dict:
    wd.mkdir(parents=True, exist_ok=True)
    if demo:
        cmd = demo_cmd(wd, profile)
    else:
        slurm_test._make_corpus(wd)
        cmd = slurm_test._cmd(profile=profile)
    started = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=wd, env=env,
                          capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"run in {wd} failed:\n{proc.stderr[-3000:]}")
    rss_kb = next(int(line.split()[-1]) for line in proc.stderr.splitlines() if "Maximum resident" in line)
    log = slurm_test.latest_snakemake_log(wd).read_text(encoding="utf-8")
    return {"wall_s": wall, "head_mb": rss_kb / 1024, "submissions": len(slurm_test.slurm_submissions(log)),
            "jobs": log.count("Finished jobid"), "infos": info_values(wd)}


def main() -> None:
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo", action="store_true", help="the demo corpus (make demo) instead of the test's")
    args = parser.parse_args()
    if args.demo and not (REPO / "demo" / ".complete").exists():
        sys.exit("no demo corpus: run `make demo` first")
    reason = slurm_test._why_not()
    if reason:
        sys.exit(f"cannot start a test SLURM: {reason}")
    state = Path("/tmp") / f"mirflow-slurm-bench-{os.getpid()}"
    root = Path(tempfile.mkdtemp(prefix="mirflow-cluster-overhead-"))
    subprocess.run(["bash", str(REPO / "tests" / "slurm" / "start.sh"), str(state)], check=True,
                   capture_output=True, timeout=300)
    try:
        env = {**os.environ, "SLURM_CONF": str(state / "etc" / "slurm.conf"), "PYTHONPATH": str(REPO / "scripts")}
        local = run(root / "local", env, profile=False, demo=args.demo)
        cluster = run(root / "cluster", env, profile=True, demo=args.demo)
    finally:
        subprocess.run(["bash", str(REPO / "tests" / "slurm" / "stop.sh"), str(state)], capture_output=True,
                       timeout=120)
        shutil.rmtree(root, ignore_errors=True)
    tracks = sum(1 for name in local["infos"] if "/crops/" not in name)
    print(f"local --cores 2: {local['wall_s']:.0f} s, head {local['head_mb']:.0f} MB")
    print(f"SLURM (profile defaults): {cluster['wall_s']:.0f} s, head {cluster['head_mb']:.0f} MB, "
          f"{cluster['jobs']} jobs in {cluster['submissions']} submissions")
    print(f"scheduler overhead per track: {(cluster['wall_s'] - local['wall_s']) / tracks:.0f} s ({tracks} tracks)")
    differ = [name for name in local["infos"] if cluster["infos"].get(name) != local["infos"][name]]
    print(f".INFO files: {len(local['infos'])} local, {len(cluster['infos'])} on SLURM; values differ in "
          f"{len(differ)}{': ' + ', '.join(differ) if differ else ''}")


if __name__ == "__main__":
    main()
