"""One-screen reports: what a run will do (start-up) and what it produced (end).

``python -m mirflow.summary RESULTS_DIR [INPUT_DIR]`` prints the end-of-run
summary at any time: how many tracks have a complete .INFO, and every failed
step with its reason and log file.
"""
from __future__ import annotations

import argparse
import os
import re
from collections import Counter
from pathlib import Path

from .runner import FAILURE_MARKER

_FAILURE = re.compile(FAILURE_MARKER + r" track=(?P<track>.*) step=(?P<step>\S+) reason=(?P<reason>.*)$")


def startup_report(input_dir: str, results_dir: str, tracks: list, missing: dict[str, dict[str, str]],
                   models: list | None = None, models_dir: str = "models", auto_fetch: bool = False) -> str:
    """What the run covers: tracks found, discovery notes, model availability, skipped families and why.

    ``models`` holds rows (model name, missing file paths, steps that need it).
    """
    with_stems = sum(1 for t in tracks if t.stems)
    lines = [f"mirflow: {len(tracks)} track(s) under '{input_dir}' ({with_stems} with provided stems); "
             f"results in '{results_dir}'"]
    notes = [(t.id, n) for t in tracks for n in t.notes]
    for track_id, note in notes[:10]:
        lines.append(f"  note: {track_id}: {note}")
    if len(notes) > 10:
        lines.append(f"  ... and {len(notes) - 10} more notes")
    if models:
        lines.append(f"  models ({models_dir}/, listed in models/manifest.yaml):")
        width = max(len(row[0]) for row in models)
        for row in models:
            name, missing_paths, users = row[:3]
            unpinned = row[3] if len(row) > 3 else False
            fetched_in_run = auto_fetch or (row[4] if len(row) > 4 else False)
            if not missing_paths:
                status = "ok (UNPINNED: no published checksum; its sha256 is recorded)" if unpinned else "ok"
            elif fetched_in_run:
                status = f"will be fetched during the run ({len(missing_paths)} file(s))"
            else:
                more = f" (+{len(missing_paths) - 1} more)" if len(missing_paths) > 1 else ""
                status = f"MISSING {models_dir}/{missing_paths[0]}{more}"
            lines.append(f"    {name:{width}s} {status}; needed by: {', '.join(users)}")
        if any(m[1] and not (auto_fetch or (len(m) > 4 and m[4])) for m in models):
            lines.append("    get missing models with `make models` (snakemake fetch_models), or place the files "
                         "there by hand (verified by sha256); see models/README.md")
    skipped = Counter((fam, reason) for per_track in missing.values() for fam, reason in per_track.items())
    if skipped:
        lines.append("  families skipped (recorded in each .INFO's _provenance.missing_families):")
        width = max(len(fam) for fam, _ in skipped)
        for (fam, reason), count in sorted(skipped.items()):
            lines.append(f"    {fam:{width}s} {count:6d} track(s): {reason}")
    if not tracks:
        lines.append("  no audio files found (extensions: wav flac mp3 ogg opus m4a aiff)")
    return "\n".join(lines)


def collect_failures(results_dir: str) -> list[dict[str, str]]:
    """Failed steps, read from the failure marker in each rule log (a successful rerun rewrites its log)."""
    failures = []
    root = Path(results_dir)
    if not root.is_dir():
        return failures
    for log in sorted(root.glob("**/logs/*.log")):
        try:
            text = log.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            failures.append({"track": str(log.parent.parent), "step": log.stem, "reason": f"unreadable log: {err}",
                             "log": str(log)})
            continue
        for line in text.splitlines():
            match = _FAILURE.search(line)
            if match:
                track = match["track"].strip("'\"")
                failures.append({"track": track, "step": match["step"], "reason": match["reason"],
                                 "log": str(log)})
    return failures


def render_summary(results_dir: str, tracks: list | None = None) -> str:
    """End-of-run summary: complete .INFO files, failures with reasons, where the results are."""
    root = Path(results_dir)
    failures = collect_failures(results_dir)
    failed_tracks = {f["track"] for f in failures}
    if tracks is None:
        total = len(sorted(root.glob("**/*.INFO")))
        complete = total - len(failed_tracks)
    else:
        total = len(tracks)
        # An .INFO left from an earlier run is not complete while a step of its track failed.
        complete = sum(1 for t in tracks
                       if (root / t.id / f"{t.name}.INFO").is_file() and t.id not in failed_tracks)
    lines = ["", "mirflow summary", "---------------",
             f"results: {os.path.abspath(results_dir)}",
             f"tracks with a complete .INFO: {complete} / {total}"]
    if failures:
        lines.append(f"failed steps: {len(failures)}")
        for f in failures[:20]:
            lines.append(f"  {f['track']} / {f['step']}: {f['reason']}")
            lines.append(f"      log: {f['log']}")
        if len(failures) > 20:
            lines.append(f"  ... and {len(failures) - 20} more (python -m mirflow.summary {results_dir})")
        lines.append("the other tracks are complete; `make report` builds the corpus report of what exists")
    else:
        lines.append("failed steps: none")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Summarise a mirflow results folder.")
    parser.add_argument("results_dir")
    parser.add_argument("input_dir", nargs="?", help="also count tracks not processed yet")
    args = parser.parse_args(argv)
    tracks = None
    if args.input_dir:
        from .tracks import discover_tracks

        tracks = discover_tracks(args.input_dir, exclude_dirs=(args.results_dir,))
    print(render_summary(args.results_dir, tracks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
