"""Scheduler overhead of the SLURM path: the SLURM test's corpus run locally and through a private SLURM.

Usage (from the repository root, as root, with the SLURM test's Debian packages installed)::

    .venv/bin/python benchmarks/cluster_overhead.py

Starts a single-node SLURM (tests/slurm/start.sh), builds the corpus of tests/slurm/test_slurm.py (a track with
stems and a loose file, 3 s each) twice, runs it with ``--cores 2`` locally and with
``--workflow-profile workflow/profiles/slurm`` (profile defaults), and prints each run's wall time, the head
process's peak memory and the number of SLURM submissions; the overhead per track is the difference of the wall
times over the 2 tracks. Stops the SLURM afterwards.
"""
from __future__ import annotations

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


def run(wd: Path, env: dict, profile: bool) -> dict:
    slurm_test._make_corpus(wd)
    started = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-v", *slurm_test._cmd(profile=profile)], cwd=wd, env=env,
                          capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"run in {wd} failed:\n{proc.stderr[-3000:]}")
    rss_kb = next(int(line.split()[-1]) for line in proc.stderr.splitlines() if "Maximum resident" in line)
    log = slurm_test.latest_snakemake_log(wd).read_text(encoding="utf-8")
    return {"wall_s": wall, "head_mb": rss_kb / 1024, "submissions": len(slurm_test.slurm_submissions(log))}


def main() -> None:
    reason = slurm_test._why_not()
    if reason:
        sys.exit(f"cannot start a test SLURM: {reason}")
    state = Path("/tmp") / f"mirflow-slurm-bench-{os.getpid()}"
    root = Path(tempfile.mkdtemp(prefix="mirflow-cluster-overhead-"))
    subprocess.run(["bash", str(REPO / "tests" / "slurm" / "start.sh"), str(state)], check=True,
                   capture_output=True, timeout=300)
    try:
        env = {**os.environ, "SLURM_CONF": str(state / "etc" / "slurm.conf"), "PYTHONPATH": str(REPO / "scripts")}
        local = run(root / "local", env, profile=False)
        cluster = run(root / "cluster", env, profile=True)
    finally:
        subprocess.run(["bash", str(REPO / "tests" / "slurm" / "stop.sh"), str(state)], capture_output=True,
                       timeout=120)
        shutil.rmtree(root, ignore_errors=True)
    print(f"local --cores 2: {local['wall_s']:.0f} s, head {local['head_mb']:.0f} MB")
    print(f"SLURM (profile defaults): {cluster['wall_s']:.0f} s, head {cluster['head_mb']:.0f} MB, "
          f"{cluster['submissions']} submissions")
    print(f"scheduler overhead per track: {(cluster['wall_s'] - local['wall_s']) / 2:.0f} s")


if __name__ == "__main__":
    main()
