"""End-to-end wall time of a full run, the baseline commit and this checkout side by side.

Usage (from the repository root)::

    .venv/bin/python benchmarks/end_to_end.py [--songs 25] [--seconds 30] [--cores 2] [--in-process]

Renders ``--songs`` demo-style songs (mirflow.demo: different tempi, metres, keys and seeds) of
``--seconds`` s with their four provided stems, then runs the whole workflow (every family that needs
no downloaded model, the merges, crops, corpus report and exports; feature captions off) on the same
files, back to back: the baseline commit (a ``git worktree`` of the main branch before warm workers,
where every job is a fresh Python process) and this checkout with warm workers (``--in-process`` adds
this checkout with ``workers: false``). Prints wall times, the speed-up and checks that each produced
the same .INFO files, with every key of the baseline (a later checkout may add keys).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench_workflow import REPO, baseline_checkout, machine, snakemake, workdir

TONICS = ("C", "D", "Eb", "E", "F", "G", "A", "Bb")
PROGRESSIONS = (("Am", "Dm", "E", "Am"), ("C", "F", "G", "C"), ("D", "G", "A", "D"), ("Em", "C", "D", "B"))


def corpus(folder: Path, songs: int, seconds: float) -> None:
    import sys

    sys.path.insert(0, str(REPO / "scripts"))
    from mirflow.demo import SongSpec, render_song, write_song

    for i in range(songs):
        tonic = TONICS[i % len(TONICS)]
        progression = PROGRESSIONS[i % len(PROGRESSIONS)]
        mode = "minor" if progression[0].endswith("m") else "major"
        spec = SongSpec(f"Song {i:02d}", 80.0 + 5 * (i % 17), 3 if i % 5 == 0 else 4, tonic, mode, seconds,
                        progression, seed=1000 + i)
        out = folder / f"Song {i:02d}"
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "full_mix.flac").exists():
            write_song(render_song(spec), out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--songs", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--in-process", action="store_true", help="also this checkout with workers: false")
    parser.add_argument("--music", type=Path, help="reuse the songs rendered by an earlier run (its music/ folder)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mirflow-e2e-"))
    if args.music:
        (root / "music").symlink_to(args.music.resolve())
    corpus(root / "music", args.songs, args.seconds)
    print(f"machine: {machine()}; {args.songs} songs of {args.seconds:g} s with provided stems, --cores {args.cores}")
    common = {"families": {"captions_feature": False}}
    variants = [("main (fresh process per job)", baseline_checkout(), common),
                ("warm workers", REPO, {**common, "workers": True})]
    if args.in_process:
        variants.append(("this branch, workers: false", REPO, {**common, "workers": False}))
    rows, infos = [], {}
    for i, (label, repo, overrides) in enumerate(variants):
        wd = workdir(root / f"v{i}", repo, root / "music", overrides)
        wall = snakemake(repo, wd, cores=args.cores)
        infos[label] = {str(p.relative_to(wd)): sorted(json.loads(p.read_text(encoding="utf-8")))
                        for p in (wd / "results").rglob("*.INFO")}
        rows.append((label, wall, len(infos[label])))
        print(f"  {label}: {wall:.1f} s", flush=True)
    base = rows[0][1]
    print("| variant | wall s | .INFO files | speed-up vs main |")
    print("|---|---|---|---|")
    for label, wall, n in rows:
        print(f"| {label} | {wall:.1f} | {n} | {base / wall:.2f}x |")
    # The same .INFO files; a later checkout may add keys (a new family), never lose one.
    first = next(iter(infos.values()))
    same_files = all(set(v) == set(first) for v in infos.values())
    kept = all(set(first[f]) <= set(v[f]) for v in infos.values() for f in first if f in v)
    added = sorted({k for v in infos.values() for f in first if f in v for k in set(v[f]) - set(first[f])})
    print(f"same .INFO files in every variant: {same_files}; every key of main kept: {kept}; keys added since: "
          f"{', '.join(added) or 'none'}")


if __name__ == "__main__":
    main()
