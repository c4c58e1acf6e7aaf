"""Snakemake's own record of a run, read line by line: progress, finished jobs and every failed job.

A job killed by a signal (segfault, out-of-memory kill, timeout) never writes anything itself, but the
Snakemake scheduler always reports it: an ``Error in rule`` block with the job id and the rule log, preceded by
the exception (``died with <Signals.SIGKILL: 9>``). This module turns those lines into failures with track,
step, reason and log, and keeps them in ``<results>/logs/run_record.json``, which ``make summary`` reads.
The same parser serves the driver (:mod:`mirflow.run`, reading Snakemake's output as it streams) and the
Snakefile's ``onerror`` handler (reading Snakemake's log file after a direct ``snakemake`` run).
"""
from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .cluster import LOG_SUFFIX
from .jobspec import FAILURE_MARKER
from .jsonio import read_json, write_json_atomic
from .layout import TRACK_INFO

RECORD_NAME = "run_record.json"
_JOB_HEAD = re.compile(r"^(?:local)?(?:rule|checkpoint) (?P<rule>[\w.-]+):\s*$")
_ERROR_HEAD = re.compile(r"^Error in rule (?P<rule>[\w.-]+):\s*$")
_FIELD = re.compile(r"^ {4}(?P<key>\w+): ?(?P<value>.*)$")
_FINISHED = re.compile(r"^Finished jobid: (?P<jobid>\d+)(?: \(Rule: (?P<rule>[\w.-]+)\))?")
_PROGRESS = re.compile(r"^(?P<done>\d+) of (?P<total>\d+) steps \((?P<pct>[^)]*)\) done")
_STATS_TOTAL = re.compile(r"^total\s+(?P<total>\d+)\s*$")
_STATS_ROW = re.compile(r"^(?P<rule>[\w.-]+)\s+(?P<count>\d+)\s*$")
_SIGNAL = re.compile(r"died with <Signals\.(?P<name>SIG\w+): (?P<num>\d+)>")
_EXIT = re.compile(r"returned non-zero exit status (?P<code>-?\d+)")
_MARKER = re.compile(FAILURE_MARKER + r" track=(?P<track>.*?) step=(?P<step>\S+) reason=(?P<reason>.*)$")
_EXC_HEAD = re.compile(r'^(?P<type>\w+) in file ".*", line \d+:\s*$')

# Why a signal ends a job, in words: SIGKILL is what the kernel's out-of-memory killer sends.
_SIGNAL_REASONS = {
    "SIGKILL": "killed (SIGKILL): out of memory (the kernel's OOM killer; see `dmesg`), a timeout or a user",
    "SIGSEGV": "crashed (SIGSEGV, segmentation fault in native code)",
    "SIGBUS": "crashed (SIGBUS, bad memory access; a full disk under a memory-mapped file?)",
    "SIGABRT": "aborted (SIGABRT, a native library gave up)",
    "SIGTERM": "terminated (SIGTERM): stopped by a timeout, the cluster or a user",
    "SIGXCPU": "killed (SIGXCPU): CPU-time limit reached",
}


@dataclass
class JobFailure:
    """One failed job: what the summary prints and ``run_record.json`` keeps."""

    track: str
    step: str
    rule: str
    reason: str
    log: str
    jobid: int | None = None
    slurm_jobid: str | None = None  # on a cluster: the SLURM job that carried it (mirflow.cluster)
    slurm_log: str | None = None
    slurm_group: str | None = None  # the Snakemake group of the submission, when it was a group job


@dataclass
class RunState:
    """Everything read from one Snakemake invocation so far."""

    total: int | None = None
    done: int = 0
    rule_counts: dict[str, int] = field(default_factory=dict)
    jobs: dict[int, dict[str, str]] = field(default_factory=dict)
    finished: list[tuple[int, str]] = field(default_factory=list)
    failures: list[JobFailure] = field(default_factory=list)
    nothing_to_do: bool = False


def track_from_log(log_path: str, results_dir: str) -> str:
    """The track id of a rule log ``<results>/<track>/logs/<step>.log``; "" for corpus-level logs."""
    try:
        rel = Path(os.path.abspath(log_path)).relative_to(os.path.abspath(results_dir)).as_posix()
    except ValueError:
        return ""
    head, sep, _ = rel.rpartition("/logs/")
    return head if sep else ""


def step_of(rule: str, log_path: str) -> str:
    """The step a job ran: its log's name (rules may serve several families; log paths are fixed), else the rule.

    ``merge_<name>.log`` is the merge step ``merge_info``.
    """
    if not log_path:
        return rule
    stem = Path(log_path).stem
    return "merge_info" if stem.startswith("merge_") else stem


def logged_failures(log_path: str) -> list[tuple[str, str]]:
    """(step, reason) of every mirflow failure message in a rule log, in order (none when it has none)."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            return [(m["step"], m["reason"].strip()) for m in map(_MARKER.search, handle) if m]
    except OSError:
        return []


def failure_reason(*, exception: list[str], log_path: str | None) -> str:
    """Why a job failed, in one line.

    In order: the mirflow failure message in the rule log (track, step, reason, fix), the signal that killed
    the process, the last line of the rule log (a traceback's exception), Snakemake's own exception text.
    """
    log_lines: list[str] = []
    if log_path:
        try:
            with open(log_path, encoding="utf-8", errors="replace") as handle:
                log_lines = [line.rstrip("\n") for line in handle][-200:]
        except OSError:
            log_lines = []
    for line in reversed(log_lines):
        match = _MARKER.search(line)
        if match:
            return match["reason"].strip()
    text = " ".join(exception)
    match = _SIGNAL.search(text)
    if match:
        return _SIGNAL_REASONS.get(match["name"], f"killed by signal {match['name']}")
    exit_match = _EXIT.search(text)
    if exit_match and int(exit_match["code"]) < 0:
        name = signal.Signals(-int(exit_match["code"])).name
        return _SIGNAL_REASONS.get(name, f"killed by signal {name}")
    if exit_match and int(exit_match["code"]) in (124, 137):
        return f"timed out (exit status {exit_match['code']})"
    meaningful = [line.strip() for line in log_lines if line.strip() and not line.startswith((" ", "\t", "="))]
    if meaningful and not meaningful[-1].endswith(f"mirflow={_version()}"):
        last = re.sub(r"^\d{4}-\d\d-\d\d [\d:,]+ (?:INFO|ERROR|WARNING) ", "", meaningful[-1])
        return f"{last} (exit status {exit_match['code']})" if exit_match else last
    if exit_match:
        return f"exited with status {exit_match['code']} without a message" + ("" if log_lines else " (no rule log)")
    # Snakemake's form: "<Type> in file "<rule file>", line N:" then the message.
    for i, line in enumerate(exception):
        match = _EXC_HEAD.match(line)
        if match and i + 1 < len(exception):
            return f"{match['type']}: {exception[i + 1].strip()}"
    detail = [line.strip() for line in exception if line.strip() and line.strip() != "RuleException:"]
    return detail[-1] if detail else "failed without a message (see Snakemake's log)"


def _version() -> str:
    from . import __version__

    return __version__


class SnakemakeLogParser:
    """Feed Snakemake's console lines one at a time; :meth:`feed` returns the events each line completes.

    Events are tuples: ``("stats", total)``, ``("progress", done, total)``, ``("finished", jobid, rule, job)``
    and ``("failed", JobFailure)``. ``job`` is the dict of the job's fields (rule, log, wildcards...).
    """

    def __init__(self, results_dir: str):
        self.results_dir = results_dir
        self.state = RunState()
        self._block: dict[str, str] | None = None
        self._block_kind = ""
        self._recent: list[str] = []
        self._in_stats = False

    def feed(self, line: str) -> list[tuple]:
        line = line.rstrip("\n")
        events: list[tuple] = []
        if self._block is not None:
            match = _FIELD.match(line)
            if match:
                self._block[match["key"]] = match["value"]
                return events
            events.extend(self._close_block(self._block))
        if self._in_stats:
            total = _STATS_TOTAL.match(line)
            row = _STATS_ROW.match(line)
            if total:
                self._in_stats = False
                self.state.total = int(total["total"])
                events.append(("stats", self.state.total))
            elif row:
                self.state.rule_counts[row["rule"]] = int(row["count"])
            elif line.strip() and not line.startswith(("job ", "---")):
                self._in_stats = False
            return events
        if line.startswith("Job stats:"):
            self._in_stats = True
            self.state.rule_counts = {}
            return events
        for pattern, kind in ((_ERROR_HEAD, "error"), (_JOB_HEAD, "job")):
            match = pattern.match(line)
            if match:
                self._block, self._block_kind = {"rule": match["rule"]}, kind
                return events
        match = _FINISHED.match(line)
        if match:
            jobid = int(match["jobid"])
            job = self.state.jobs.get(jobid, {"rule": match["rule"] or "?"})
            self.state.finished.append((jobid, job["rule"]))
            events.append(("finished", jobid, job["rule"], job))
            return events
        match = _PROGRESS.match(line)
        if match:
            self.state.done, self.state.total = int(match["done"]), int(match["total"])
            events.append(("progress", self.state.done, self.state.total))
            return events
        if line.startswith("Nothing to be done"):
            self.state.nothing_to_do = True
        if line.strip() and not line.startswith("["):
            self._recent = (self._recent + [line])[-6:]
        return events

    def close(self) -> list[tuple]:
        """Flush a block still open at the end of the output."""
        return self._close_block(self._block) if self._block is not None else []

    def _close_block(self, block: dict[str, str]) -> list[tuple]:
        kind = self._block_kind
        self._block = None
        if kind == "job":
            if "jobid" in block and block["jobid"].isdigit():
                self.state.jobs[int(block["jobid"])] = block
            self._recent = []
            return []
        jobid = int(block["jobid"]) if block.get("jobid", "").isdigit() else None
        job = self.state.jobs.get(jobid, {}) if jobid is not None else {}
        log_path = (block.get("log") or job.get("log") or "").removesuffix(LOG_SUFFIX).strip()
        track = track_from_log(log_path, self.results_dir) if log_path else _track_from_wildcards(job)
        # A job of several families (a layout step) names each family that failed in its log: one failure each.
        steps = logged_failures(log_path) if log_path else []
        if not steps:
            steps = [(step_of(block["rule"], log_path),
                      failure_reason(exception=self._recent, log_path=log_path or None))]
        failures = [JobFailure(track=track, step=step, rule=block["rule"], reason=reason,
                               log=os.path.abspath(log_path) if log_path else "", jobid=jobid)
                    for step, reason in steps]
        self._recent = []
        self.state.failures.extend(failures)
        return [("failed", failure) for failure in failures]


def _track_from_wildcards(job: dict[str, str]) -> str:
    # Only when a job has no log: wildcard values may contain ", ", so this is a best effort.
    wildcards = dict(part.split("=", 1) for part in job.get("wildcards", "").split(", ") if "=" in part)
    return wildcards.get("track") or (wildcards.get("parent", "") + wildcards.get("name", ""))


def parse_log(text: str, results_dir: str) -> RunState:
    """Read a whole Snakemake log (console output or ``.snakemake/log/*.snakemake.log``)."""
    parser = SnakemakeLogParser(results_dir)
    for line in text.splitlines():
        parser.feed(line)
    parser.close()
    return parser.state


def record_path(results_dir: str) -> Path:
    return Path(results_dir) / "logs" / RECORD_NAME


def read_record(results_dir: str) -> dict:
    """``run_record.json``: one section per invocation scope (``"all"`` or a batch ``"i/n"``)."""
    try:
        record = read_json(record_path(results_dir))
    except (OSError, ValueError):
        return {"sections": {}}
    return record if isinstance(record.get("sections"), dict) else {"sections": {}}


def _written_since(path: str, started: float | None) -> bool:
    try:
        return started is not None and os.path.getmtime(path) >= started
    except OSError:
        return False


def _superseded(failure: dict, results_dir: str, started: float | None) -> bool:
    """Whether a failure of an earlier run no longer holds: its job ran again in this run (its log written
    since ``started``), or its track's .INFO was written in this run (every step before the merge succeeded,
    though Snakemake's log need not list the jobs: a cluster group job's members are not). Crops come after the
    .INFO, so only their own log supersedes their failure."""
    if _written_since(failure.get("log", ""), started):
        return True
    track = failure.get("track") or ""
    if not track or failure.get("rule") == "crops":
        return False
    return _written_since(os.path.join(results_dir, track, f"{track.rsplit('/', 1)[-1]}.INFO"), started)


def update_record(results_dir: str, section: str, entry: dict, attempted: set[str] | None = None,
                  started: float | None = None) -> dict:
    """Replace one section of the run record (a batch's rerun replaces that batch's failures).

    A run over all tracks replaces every section; a batch of ``n`` drops sections of another split. When the
    run failed, failures it replaces whose job it did not attempt (``attempted``: the rule logs of its jobs)
    are kept: a run that stopped early, or a run of one target, says nothing about them, unless this run
    ``started`` after them superseded them (:func:`_superseded`). A run that succeeded completed its whole DAG,
    so nothing is carried over.
    """
    record = read_record(results_dir)
    sections = record["sections"]
    if section == "all":
        replaced = list(sections)
    else:
        n = section.split("/")[-1]
        replaced = [k for k in sections if k == section or k == "all" or k.split("/")[-1] != n]
    carried = []
    if attempted is not None and entry.get("exit_code"):
        done = {os.path.abspath(p) for p in attempted}
        new = {f["log"] for f in entry["failures"]}
        carried = [f for k in replaced for f in sections[k].get("failures", [])
                   if f.get("log") and os.path.abspath(f["log"]) not in done and f["log"] not in new
                   and not _superseded(f, results_dir, started)]
    for key in replaced:
        del sections[key]
    sections[section] = {**entry, "failures": [*entry["failures"], *carried]}
    record["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json_atomic(record_path(results_dir), record)
    return record


def attempted_logs(state: RunState) -> set[str]:
    """The rule logs of every job the invocation started (finished or failed)."""
    return {job["log"] for job in state.jobs.values() if job.get("log")}


def record_entry(state: RunState, *, started: float, ended: float, exit_code: int, log: str,
                 audio_s: float = 0.0, tracks_finished: int = 0) -> dict:
    """One section of the run record from a parsed invocation."""
    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "wall_s": round(ended - started, 3),
        "exit_code": exit_code,
        "jobs_total": state.total or 0,
        "jobs_done": state.done,
        "tracks_finished": tracks_finished,
        "audio_s": round(audio_s, 3),
        "snakemake_log": os.path.abspath(log) if log else "",
        "failures": [asdict(f) for f in state.failures],
    }


def record_failures(results_dir: str) -> list[dict]:
    """Every failed job in the run record (all sections)."""
    return [f for entry in read_record(results_dir)["sections"].values() for f in entry.get("failures", [])]


def finished_tracks(state: RunState, results_dir: str) -> list[str]:
    """Tracks whose last job finished in this invocation: the crops when the run has crops, else the
    job writing the .INFO."""
    final = "crops" if state.rule_counts.get("crops") else TRACK_INFO
    return [track_from_log(job.get("log", ""), results_dir) for jobid, rule in state.finished if rule == final
            for job in [state.jobs.get(jobid, {})] if job.get("log")]


def audio_seconds(track_ids: list[str], results_dir: str) -> float:
    """Total ``duration_s`` of the tracks' .INFO files (those that are readable)."""
    total = 0.0
    for tid in track_ids:
        try:
            value = read_json(Path(results_dir) / tid / f"{tid.rsplit('/', 1)[-1]}.INFO").get("duration_s")
        except (OSError, ValueError, AttributeError):
            continue
        total += value if isinstance(value, (int, float)) else 0.0
    return total


def add_cluster_failures(state: RunState, text: str, results_dir: str) -> None:
    """On a cluster run, name the SLURM job and log of each failed job, and add the jobs of a failed group
    submission (Snakemake logs those as "Error in group", without a block per job)."""
    from .cluster import failed_slurm_jobs

    by_log = {os.path.abspath(f.log): f for f in state.failures if f.log}
    by_jobid = {str(f.jobid): f for f in state.failures if f.jobid is not None}
    for job in failed_slurm_jobs(text):
        log = job.log[0] if job.log else ""
        known = by_log.get(os.path.abspath(log)) if log else by_jobid.get(job.jobid)
        if known is None:
            where = f"group {job.group}" if job.group else "its submission"
            known = JobFailure(track=track_from_log(log, results_dir) if log else "", step=step_of(job.rule, log),
                               rule=job.rule, log=log, jobid=int(job.jobid) if job.jobid.isdigit() else None,
                               reason=f"SLURM job {job.slurm_jobid or '?'} ({where}) failed"
                                      + (f": {job.message}" if job.message else ""))
            state.failures.append(known)
            if log:
                by_log[os.path.abspath(log)] = known
        known.slurm_jobid, known.slurm_log, known.slurm_group = job.slurm_jobid, job.slurm_log, job.group


def record_snakemake_log(results_dir: str, log_files: list[str] | str, *, section: str, started: float,
                         exit_code: int) -> dict:
    """After a direct ``snakemake`` run (the Snakefile's onsuccess/onerror): parse Snakemake's log file and
    store the run's section of the record."""
    paths = [log_files] if isinstance(log_files, str) else list(log_files)
    text = ""
    for path in paths:
        try:
            text += Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
    state = parse_log(text, results_dir)
    add_cluster_failures(state, text, results_dir)
    done = finished_tracks(state, results_dir)
    entry = record_entry(state, started=started, ended=time.time(), exit_code=exit_code,
                         log=paths[0] if paths else "", audio_s=audio_seconds(done, results_dir),
                         tracks_finished=len(done))
    update_record(results_dir, section, entry, attempted_logs(state), started=started)
    return entry
