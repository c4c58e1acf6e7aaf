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

from .jobspec import FAILURE_MARKER
from .runlog import read_record, record_failures, record_path

_FAILURE = re.compile(FAILURE_MARKER + r" track=(?P<track>.*) step=(?P<step>\S+) reason=(?P<reason>.*)$")


def startup_report(input_dir: str, results_dir: str, tracks: list, missing: dict[str, dict[str, str]],
                   models: list | None = None, models_dir: str = "models", auto_fetch: bool = False) -> str:
    """What the run covers: tracks found, discovery notes, model availability, skipped families and why.

    ``models`` holds rows (model name, missing file paths, steps that need it).
    """
    with_stems = sum(1 for t in tracks if t.stems)
    lines = [(f"mirflow: {len(tracks)} track(s) under '{input_dir}' ({with_stems} with provided stems); "
             f"results in '{results_dir}'")]
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


def marker_failures(results_dir: str) -> list[dict[str, str]]:
    """Failed steps whose rule log holds mirflow's failure message (a successful rerun rewrites its log).

    Only a complement to the run record: a process killed by a signal writes no message.
    """
    failures: list[dict[str, str]] = []
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


def collect_failures(results_dir: str) -> list[dict[str, str]]:
    """Every failed job: Snakemake's record of the last run(s) (``logs/run_record.json``, whatever killed the
    job), plus failure messages in rule logs the record does not cover (a run whose scheduler was killed)."""
    recorded = record_failures(results_dir)
    seen = {os.path.abspath(f["log"]) for f in recorded if f.get("log")}
    extra = [f for f in marker_failures(results_dir) if os.path.abspath(f["log"]) not in seen]
    return [*recorded, *extra]


def track_folders(results_dir: str) -> list[str]:
    """Track ids present in a results folder: folders with a ``features/`` or ``logs/`` folder (every job of a
    track logs to ``<track>/logs/``; the results folder's own ``logs/`` is the corpus jobs'; crops are not tracks)."""
    found = []
    root = os.path.abspath(results_dir)
    for dirpath, dirnames, _ in os.walk(root):
        if dirpath != root and ("features" in dirnames or "logs" in dirnames):
            found.append(os.path.relpath(dirpath, root).replace(os.sep, "/"))
            dirnames[:] = []  # nothing below a track folder is another track
        else:
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("stats", "logs", "audiocraft")]
    return sorted(found)


def reason_group(reason: str) -> str:
    """The kind of a failure: its reason without file names and details, so equal causes group together."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason.split(" Fix: ")[0])
    text = re.sub(r"\s*\([^()]*[…:][^()]*\)", "", text)  # details that name files or quote libraries
    return text.strip().rstrip(".")[:160]


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _shown(path: str) -> str:
    """A path relative to the current folder when it lies below it (shorter to read), else absolute."""
    rel = os.path.relpath(path)
    return rel if not rel.startswith("..") else os.path.abspath(path)


def render_summary(results_dir: str, tracks: list | None = None, run: dict | None = None,
                   max_per_group: int = 5) -> str:
    """End-of-run summary: tracks complete / partial / failed, audio processed and throughput, failed jobs
    grouped by reason (track, step, log), then where to look next.

    Parameters
    ----------
    results_dir : str
        The results folder.
    tracks : list of Track, optional
        The collection (counts tracks not started too); without it, the track folders in ``results_dir``.
    run : dict, optional
        ``wall_s``, ``audio_s`` and ``tracks_finished`` of the run just ended; default: the run record's.
    max_per_group : int
        Failed jobs listed per reason (the rest are counted; ``make summary`` lists them all the same way).
    """
    root = Path(results_dir)
    failures = collect_failures(results_dir)
    failed_tracks = {f["track"] for f in failures if f.get("track")}
    if tracks is not None:
        ids = {t.id: t.name for t in tracks}
    else:
        ids = {tid: tid.rsplit("/", 1)[-1] for tid in track_folders(results_dir)}
        ids.update({t: t.rsplit("/", 1)[-1] for t in failed_tracks if t not in ids})
    complete = partial = failed = pending = 0
    for tid, name in ids.items():
        if tid in failed_tracks:
            failed += 1
        elif (root / tid / f"{name}.INFO").is_file():
            complete += 1
        elif (root / tid).is_dir():
            partial += 1
        else:
            pending += 1
    lines = ["", f"mirflow summary: {_shown(str(root))}",
             f"  tracks: {complete} complete, {partial} partial, {failed} failed"
             + (f", {pending} not started" if pending else "") + f" (of {len(ids)})"]
    if run is None:
        sections = read_record(results_dir)["sections"].values()
        run = {"wall_s": sum(s.get("wall_s", 0) for s in sections),
               "audio_s": sum(s.get("audio_s", 0) for s in sections),
               "tracks_finished": sum(s.get("tracks_finished", 0) for s in sections)} if sections else None
    if run and run.get("tracks_finished"):
        wall, audio = max(run["wall_s"], 1e-9), run["audio_s"]
        lines.append(f"  processed: {run['tracks_finished']} track(s), {audio / 3600:.2f} h of audio in "
                     f"{_duration(wall)} ({audio / wall:.2f} s of audio per s, "
                     f"{run['tracks_finished'] * 3600 / wall:.0f} tracks/h)")
    elif run:
        lines.append(f"  processed: no track finished in {_duration(run['wall_s'])}")
    if failures:
        groups: dict[str, list[dict]] = {}
        for f in failures:
            groups.setdefault(reason_group(f["reason"]), []).append(f)
        lines.append(f"  failed jobs: {len(failures)} ({len(groups)} reason(s)); each log has the details:")
        for group, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            lines.append(f"    {len(members)} x {group}")
            for f in members[:max_per_group]:
                where = f"{f['track']} / {f['step']}" if f.get("track") else f"(corpus) {f['step']}"
                lines.append(f"      {where}: {_shown(f['log']) if f.get('log') else 'no log'}")
                if f.get("slurm_jobid"):
                    lines.append(f"        SLURM job {f['slurm_jobid']}, log {f.get('slurm_log') or '(none named)'}")
            if len(members) > max_per_group:
                lines.append(f"      ... and {len(members) - max_per_group} more (the full list: "
                             f"{_shown(str(record_path(results_dir)))})")
        first = failures[0]
        lines.append(f"  first failure in full: {first['reason'][:400]}")
    else:
        lines.append("  failed jobs: none")
    lines.append("  next:")
    report = root / "stats" / "report_tracks.html"
    lines.append(f"    report      {_shown(str(report))}" if report.is_file()
                 else "    report      not built (it needs every track; `make report` builds it from what exists)")
    for label, path in (("SAT config", root / "sat_config.json"),):
        if path.is_file():
            lines.append(f"    {label:11s} {_shown(str(path))}")
    audiocraft = root / "audiocraft"
    manifests = sorted(p for p in audiocraft.glob("*") if p.is_file()) if audiocraft.is_dir() else []
    for path in manifests[:3]:
        lines.append(f"    AudioCraft  {_shown(str(path))}")
    logs = root / "logs"
    lines.append(f"    logs        {_shown(str(logs))}/ (Snakemake's full record in snakemake/, "
                 "each job's log in <track>/logs/)")
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
