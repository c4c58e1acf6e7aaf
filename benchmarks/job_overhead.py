"""Per-job overhead of a workflow run: what a job costs beyond its computation.

Usage (from the repository root)::

    .venv/bin/python benchmarks/job_overhead.py [--tracks 60] [--seconds 5] [--no-baseline]

Builds N loose tracks by hard-linking one noise file of ``--seconds`` s, then for each variant
(the baseline commit, this checkout with warm workers, this checkout with ``workers: false``) runs
``snakemake --cores 1`` on the N ``loudness`` partial JSONs only and reports

    overhead per job = (wall of the run - wall of its dry run - sum of _meta.wall_time_s) / N

(the issue's definition: the dry run covers parsing and DAG building, ``_meta.wall_time_s`` the
computation including decoding). Every other family is disabled, so with the job layout by steps the job is a
``track_features`` job with loudness alone; its probe (the decode check of the input, in a child process) is
no family's computation and counts as overhead. Runs are back to back; on a shared machine compare them, not the
absolute figures.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from bench_workflow import REPO, baseline_checkout, machine, recorded_compute_s, snakemake, workdir


def corpus(folder: Path, tracks: int, seconds: float, sample_rate: int = 44100) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    source = folder / "source.flac.orig"
    sf.write(source, 0.1 * rng.standard_normal((int(seconds * sample_rate), 2)).astype(np.float32), sample_rate,
             format="FLAC")
    for i in range(tracks):
        link = folder / f"t{i:05d}.flac"
        if not link.exists():
            os.link(source, link)
    return [f"t{i:05d}" for i in range(tracks)]


def measure(label: str, repo: Path, music: Path, ids: list[str], root: Path, overrides: dict) -> dict:
    import yaml

    from mirflow.registry import FAMILIES

    # The baseline checkout knows the families its config lists (and refuses others); this checkout's config
    # need not list a family (on by default), so its registry names them all.
    names = FAMILIES if repo == REPO else yaml.safe_load((repo / "config" / "config.yaml").read_text())["families"]
    overrides = {**overrides, "families": {name: name == "loudness" for name in names},
                 "crops": {"enabled": False}}
    wd = workdir(root / label, repo, music, overrides)
    targets = [f"results/{t}/features/loudness.json" for t in ids]
    dry = snakemake(repo, wd, "-n", *targets)
    wall = snakemake(repo, wd, *targets)
    compute, count = recorded_compute_s(wd / "results", "loudness")
    assert count == len(ids), (count, len(ids))
    return {"variant": label, "wall_s": wall, "dry_s": dry, "compute_s": compute,
            "overhead_s": (wall - dry - compute) / len(ids)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-in-process", action="store_true", help="skip this checkout with workers: false")
    args = parser.parse_args()
    print(f"machine: {machine()}; {args.tracks} loudness jobs on {args.seconds:g} s stereo 44.1 kHz files")
    root = Path(tempfile.mkdtemp(prefix="mirflow-overhead-"))
    ids = corpus(root / "music", args.tracks, args.seconds)
    variants = []
    if not args.no_baseline:
        variants.append((f"main {baseline_checkout().name.rsplit('-', 1)[-1]} (fresh process per job)",
                         baseline_checkout(), {}))
    variants.append(("warm workers", REPO, {"workers": True}))
    if not args.no_in_process:
        variants.append(("this branch, workers: false", REPO, {"workers": False}))
    rows = [measure(f"v{i}", repo, root / "music", ids, root, overrides) | {"variant": label}
            for i, (label, repo, overrides) in enumerate(variants)]
    print("| variant | wall s | dry run s | compute s | overhead per job s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['wall_s']:.1f} | {r['dry_s']:.1f} | {r['compute_s']:.1f} "
              f"| {r['overhead_s']:.3f} |")


if __name__ == "__main__":
    main()
