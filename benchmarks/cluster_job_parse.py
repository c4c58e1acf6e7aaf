"""Time one cluster job's workflow parse: what every SLURM job (and every job inside a group job) pays before it
computes, because it re-runs Snakemake on the whole workflow for its --target-jobs.

Builds a fake corpus of N loose tracks by hard-linking one short file (default 10,000), then times the command a
cluster job runs (`snakemake --target-jobs track_features:parent=,name=<one> --allowed-rules track_features
--mode remote`, as the plugin's srun line does), here as a dry run so only parse + DAG are timed. Prints wall seconds
and peak RSS.
A first, untimed-for-the-goal parse builds the track index (as the head process does on the login node); the
timed one then reads it trusted (MIRFLOW_TRUST_TRACK_INDEX=1, what a cluster job does: it never rescans the
input folder). RULE is the rule of the one target job (default track_features, the first job of a track: a dry
run of a later one stops at its missing inputs; after the rule renames of the
registry-generated workflow pass e.g. track_features).

    python benchmarks/cluster_job_parse.py [N] [WORKDIR] [RULE]
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def build(workdir: Path, n: int) -> None:
    music = workdir / "music"
    if (workdir / ".built").exists() and len(list(music.iterdir())) == n + 1:
        return
    shutil.rmtree(workdir, ignore_errors=True)
    music.mkdir(parents=True)
    shutil.copytree(REPO / "config", workdir / "config")
    src = music / ".src.flac"
    sf.write(src, (0.1 * np.sin(np.arange(22050 * 5) / 22050 * 2 * np.pi * 440)).astype(np.float32), 22050)
    for i in range(n):
        os.link(src, music / f"t{i:06d}.flac")
    (workdir / ".built").touch()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    workdir = Path(sys.argv[2] if len(sys.argv) > 2 else f"/tmp/mirflow-parse-{n}")
    rule = sys.argv[3] if len(sys.argv) > 3 else "track_features"
    build(workdir, n)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"), "-n",
           "--workflow-profile", "none", "--cores", "1", "--target-jobs", f"{rule}:parent=,name=t000000",
           "--allowed-rules", rule, "--nolock", "--config", "input_dir=music", "results_dir=results"]
    env = {k: v for k, v in os.environ.items() if k != "MIRFLOW_TRUST_TRACK_INDEX"}
    runs = (("head (index refreshed)", {}), ("cluster job (index trusted)", {"MIRFLOW_TRUST_TRACK_INDEX": "1"}))
    for label, extra in runs:
        t0 = time.monotonic()
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env={**env, **extra})
        wall = time.monotonic() - t0
        if proc.returncode:
            sys.exit(proc.stderr[-3000:])
        print(f"tracks {n}: {label}: parse + DAG {wall:.1f} s")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS of either {rss:.0f} MB")


if __name__ == "__main__":
    main()
