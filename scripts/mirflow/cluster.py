"""Which SLURM job ran (and failed) a Snakemake job: read from Snakemake's own log of a cluster run.

With ``--workflow-profile workflow/profiles/slurm`` the executor plugin logs one line per submission::

    Job 12 has been submitted with SLURM jobid 4711 (log: /abs/.snakemake/slurm_logs/rule_x/A/4711.log).
    Job 5bd3e6e9-... has been submitted with SLURM jobid 4712 (log: /abs/.snakemake/slurm_logs/group_x/4712.log).

(a group job is named by a uuid), and Snakemake logs each failure: a single-rule submission as an
``Error in rule R:`` block (jobid, output, log, ``external_jobid``), a group submission as a block
``message: Error in group G`` / ``log: <SLURM log>`` / ``jobs:`` listing every rule job of the group (jobid,
output, log), followed by the jobs' own ``Error in rule`` blocks. With show-failed-logs the SLURM log is
printed too, holding the inner Snakemake's errors under job ids of its own: those are skipped. All of it goes
to the run's log file (``.snakemake/log/*.snakemake.log``), which is what :func:`failed_slurm_jobs` reads.
"""
from __future__ import annotations

import dataclasses
import re
import sys
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path

_SUBMITTED = re.compile(r"Job (?P<job>\S+) has been submitted with SLURM jobid (?P<slurm>[\w]+) "
                        r"\(log: (?P<log>.+)\)\.\s*$")
_ARRAY = re.compile(r"Submitted array job with Snakemake IDs (?P<jobs>[\d,]+) and SLURM job ID (?P<slurm>\d+)")
_SLURM_FAILED = re.compile(r"SLURM-job '(?P<slurm>[\w]+)' failed")
_ERROR_RULE = re.compile(r"^(?P<indent>\s*)Error in rule (?P<rule>\S+?):?\s*$")
_ERROR_GROUP = re.compile(r"^\s*Error in group (?P<group>\S+?):?\s*$")
_GROUP_IN_MESSAGE = re.compile(r"^\s+message: Error in group (?P<group>\S+?):?\s*$")
_FIELD = re.compile(r"^\s+(?P<key>jobid|output|log|external_jobid|message): (?P<value>.*)$")
_GROUP_RULE = re.compile(r"^\s+rule (?P<rule>\S+):\s*$")
#: What Snakemake appends to the log paths of a failed job in its own log.
LOG_SUFFIX = " (check log file(s) for error details)"


@dataclass(frozen=True)
class FailedJob:
    """One failed Snakemake job of a cluster run and the SLURM job that carried it.

    ``slurm_jobid`` and ``slurm_log`` are None when the log does not name them (e.g. the submission itself
    failed); ``group`` is the Snakemake group when the job ran inside a group submission.
    """

    rule: str
    jobid: str
    output: tuple[str, ...] = ()
    log: tuple[str, ...] = ()
    slurm_jobid: str | None = None
    slurm_log: str | None = None
    group: str | None = None
    message: str = field(default="", compare=False)


def slurm_submissions(log_text: str) -> dict[str, tuple[str, str | None]]:
    """Snakemake job id (a number, or a group job's uuid) -> (SLURM job id, SLURM log path), from a run's log.

    Array submissions (one line for many jobs) map each job to ``<id>_<task>`` without a log path.
    """
    out: dict[str, tuple[str, str | None]] = {}
    for line in log_text.splitlines():
        m = _SUBMITTED.search(line)
        if m:
            out[m["job"]] = (m["slurm"], m["log"])
            continue
        m = _ARRAY.search(line)
        if m:
            for task, job in enumerate(m["jobs"].split(","), start=1):
                out[job] = (f"{m['slurm']}_{task}", None)
    return out


#: Snakemake's annotation of a flagged file in its job blocks, e.g. ``features/loudness.json (update)``.
_FLAG_NOTE = re.compile(r" \((?:update|before_update|directory|temp|protected|pipe|service|ensure)\)$")


def _split(value: str) -> tuple[str, ...]:
    """The paths of a job block's ``output:``/``log:`` field, which Snakemake joins with ``", "``.

    A path may hold ``", "`` itself (a track folder "Beatles, The"), so a piece is a new path only when it is
    absolute or starts like a path before it (the same first folder, e.g. ``results/``); otherwise it continues
    the previous one. A folder name cannot start with ``/``, so a SLURM log after a track's log stays apart.
    """
    paths: list[str] = []
    roots: set[str] = set()
    bare = False  # a path without a folder came first: no way to tell a continuation, split at every comma
    for piece in value.removesuffix(LOG_SUFFIX).split(", "):
        stripped = piece.lstrip()
        if not paths or bare or stripped.startswith("/") or any(stripped.startswith(r) for r in roots):
            paths.append(piece)
            root = _path_root(stripped)
            if root is None:
                bare = True
            else:
                roots.add(root)
        else:
            paths[-1] += ", " + piece
    return tuple(_FLAG_NOTE.sub("", p.strip()) for p in paths if p.strip())


def _path_root(path: str) -> str | None:
    """``"results/a/b.json"`` -> ``"results/"``; ``"/abs/x"`` -> ``"/"``; a name without a folder -> None."""
    head, sep, _ = path.partition("/")
    return head + sep if sep else None


def failed_slurm_jobs(log_text: str) -> list[FailedJob]:
    """Every failed job of a cluster run with its SLURM job id and SLURM log, in the order Snakemake logged them.

    Parameters
    ----------
    log_text : str
        Contents of the run's Snakemake log (``.snakemake/log/<time>.snakemake.log``) or its stderr.

    Returns
    -------
    list of FailedJob
        One entry per failed Snakemake job (a failed group submission yields one per job of the group, all
        naming the group's SLURM job and log), deduplicated by Snakemake job id.
    """
    submissions = slurm_submissions(log_text)
    slurm_by_log = {log: slurm for slurm, log in submissions.values() if log}
    log_by_slurm = dict(submissions.values())
    failed: dict[str, FailedJob] = {}
    lines = log_text.splitlines()
    i = 0
    block: dict[str, str] = {}  # fields seen since the last timestamp or block
    group_name = None
    while i < len(lines):
        line = lines[i]
        if _is_shown_log(lines, i):
            # a job's log shown by show-failed-logs: a group's log holds the inner Snakemake's own errors,
            # whose job ids are not the run's; skip to the closing rule
            i = _skip_shown_log(lines, i)
            continue
        m = _ERROR_GROUP.match(line) or _GROUP_IN_MESSAGE.match(line)
        if m:
            group_name = m["group"]
        if lines[i].strip() == "jobs:":
            # a group's error: its fields (message, SLURM log) came just before; its rule jobs follow
            slurm_log = _split(block["log"])[0] if block.get("log") else None
            slurm = (_slurm_in(block.get("message", "")) or (slurm_by_log.get(slurm_log) if slurm_log else None)
                     or _id_of_log(slurm_log))
            slurm_log = slurm_log or (log_by_slurm.get(slurm) if slurm else None)
            i += 1
            while i < len(lines) and (m := _GROUP_RULE.match(lines[i])):
                fields, i = _read_fields(lines, i + 1)
                jobid = fields.get("jobid", "")
                failed[jobid] = FailedJob(rule=m["rule"], jobid=jobid, output=_split(fields.get("output", "")),
                                          log=_split(fields.get("log", "")), slurm_jobid=slurm, slurm_log=slurm_log,
                                          group=group_name,
                                          message=block.get("message", ""))
            block, group_name = {}, None
            continue
        rule = _ERROR_RULE.match(line)
        if rule:
            fields, i = _read_fields(lines, i + 1)
            jobid = fields.get("jobid", "")
            known = failed.get(jobid)
            if known and known.slurm_jobid:  # already named by its group's block
                failed[jobid] = replace(known, log=known.log or _split(fields.get("log", "")))
                continue
            slurm = fields.get("external_jobid") or _slurm_in(fields.get("message", "")) or \
                submissions.get(jobid, (None, None))[0]
            failed[jobid] = FailedJob(rule=rule["rule"], jobid=jobid, output=_split(fields.get("output", "")),
                                      log=_split(fields.get("log", "")), slurm_jobid=slurm,
                                      slurm_log=log_by_slurm.get(slurm) if slurm else None,
                                      message=fields.get("message", ""))
            block = {}
            continue
        f = _FIELD.match(line)
        if f:
            block.setdefault(f["key"], f["value"].strip())
        elif line.startswith("["):  # a timestamp starts a new record
            block = {}
        i += 1
    return list(failed.values())


def _is_shown_log(lines: list[str], i: int) -> bool:
    """Line i opens a log shown by show-failed-logs: ``Logfile <path>:`` then a rule of ``=``."""
    return lines[i].lstrip().startswith("Logfile ") and lines[i].rstrip().endswith(":") and i + 1 < len(lines) \
        and _is_rule(lines[i + 1])


def _is_rule(line: str) -> bool:
    """Snakemake's 80-character delimiter of a shown log (not the inner run's short banner underline)."""
    stripped = line.strip()
    return len(stripped) >= 40 and set(stripped) == {"="}


def _skip_shown_log(lines: list[str], i: int) -> int:
    """Index after the shown log opening at line i; a group's log nests the inner run's own shown logs."""
    depth, i = 1, i + 2
    while i < len(lines) and depth:
        if _is_shown_log(lines, i):
            depth, i = depth + 1, i + 2
            continue
        if _is_rule(lines[i]):
            depth -= 1
        i += 1
    return i


def _id_of_log(path: str | None) -> str | None:
    """The SLURM job id in a plugin log path (``.../<id>.log``)."""
    m = re.search(r"/(\d+(?:_\d+)?)\.log$", path or "")
    return m[1] if m else None


def _slurm_in(message: str) -> str | None:
    m = _SLURM_FAILED.search(message)
    return m["slurm"] if m else None


def _read_fields(lines: list[str], i: int) -> tuple[dict[str, str], int]:
    fields: dict[str, str] = {}
    while i < len(lines):
        m = _FIELD.match(lines[i])
        if not m:
            break
        fields.setdefault(m["key"], m["value"].strip())
        i += 1
    return fields, i


def latest_snakemake_log(workdir: str | Path = ".") -> Path | None:
    """The newest ``.snakemake/log/*.snakemake.log`` under ``workdir`` (the run just finished), or None."""
    logs = sorted(Path(workdir, ".snakemake", "log").glob("*.snakemake.log"))
    return logs[-1] if logs else None


def slurm_state(state: str) -> str:
    """A ``sacct`` job state without its qualifier: ``"CANCELLED by 1000"`` -> ``"CANCELLED"``.

    sacct appends ``by <uid>`` to the state of a job cancelled by a user (a plain ``scancel``); every other state
    is one word and is returned unchanged.
    """
    return state.split(" ", 1)[0] if state else state


def fix_slurm_cancelled_state() -> bool:
    """Make the SLURM executor plugin see a plain ``scancel`` as a failure instead of waiting forever.

    snakemake-executor-plugin-slurm 2.8.0 (the newest release) compares sacct's state with exact names
    (``status in fail_stati``), so ``"CANCELLED by <uid>"`` matches no branch of its status check: the job is
    neither reported nor kept active, and Snakemake waits for it until interrupted. This wraps the plugin's
    ``query_job_status`` (looked up by name at every status check) so that every state reaches the check
    without its qualifier; the job is then reported failed with its SLURM id and log, like a killed one.

    A no-op (returns False) when the plugin is not loaded (local runs, the jobs inside a cluster job) or was
    already wrapped; True when it wrapped it.
    """
    plugin = sys.modules.get("snakemake_executor_plugin_slurm")
    original = getattr(plugin, "query_job_status", None)
    if plugin is None or original is None or getattr(original, "mirflow_wrapped", False):
        return False

    async def query_job_status(command, logger):
        status, duration = await original(command, logger)
        if status is not None:
            status = {job: slurm_state(state) for job, state in status.items()}
        return status, duration

    query_job_status.mirflow_wrapped = True  # type: ignore[attr-defined]  # marker read back above
    plugin.query_job_status = query_job_status  # type: ignore[attr-defined]  # the plugin's name, replaced
    return True


def keep_going_inside_cluster_job(workflow) -> bool:
    """Let a group job's other jobs (other tracks) finish when one of its jobs fails.

    A cluster job runs ``python -m snakemake --mode remote --target-jobs <its jobs> --no-hooks ...``:
    Snakemake's ``general_args`` pass no ``--keep-going`` and profiles are read only in the default mode, so
    the inner scheduler stops starting jobs at the first failure and one bad track leaves the rest of its
    submission undone. The setting cannot be changed from the Snakefile (``workflow.execution_settings`` is
    built after the parse, and the hooks are off in remote mode), so in remote mode only this wraps
    ``JobScheduler.__init__`` to set its ``keepgoing`` (read from the settings once, at construction). The
    group job still exits non-zero, so the head reports the failure. Called from the Snakefile with
    Snakemake's ``workflow`` object; the head process and local runs are untouched.

    Returns True when it wrapped the scheduler.
    """
    if not workflow.remote_exec:
        return False
    from snakemake.scheduling.job_scheduler import JobScheduler

    init = JobScheduler.__init__
    if getattr(init, "mirflow_wrapped", False):
        return False

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.keepgoing = True

    __init__.mirflow_wrapped = True  # type: ignore[attr-defined]  # marker read back above
    JobScheduler.__init__ = __init__
    return True


def encode_target_job_value(value: str) -> str:
    """A wildcard value as it travels in ``--target-jobs``: percent-encoded, every byte but ``/`` and the
    unreserved ASCII characters (so no comma, quote, space or shell character is left)."""
    return urllib.parse.quote(value, safe="/", errors="surrogateescape")


def decode_target_job_value(value: str) -> str:
    """The inverse of :func:`encode_target_job_value` (a file name's undecodable bytes come back as they were)."""
    return urllib.parse.unquote(value, errors="surrogateescape")


def carry_any_track_name_to_cluster_jobs() -> bool:
    """Let a track whose path holds a comma (or a quote) run in a cluster job.

    A cluster job is ``python -m snakemake --target-jobs 'rule:track=<value>,...'``. Snakemake 9.27 parses that
    argument by splitting at every comma and strips quotes at both ends of each value, before the workflow is
    read; its executor interface quotes a value with a comma, which the parser does not honour
    (snakemake/snakemake#2366 and #4298, open; the decoding half of the fix, #2659, unmerged). "Beatles, The"
    therefore failed before its job started. Every process that parses this workflow sends wildcard values
    percent-encoded (:func:`encode_target_job_value`; the SLURM executor in the head, the job-step executor
    inside a group job), and a remote process decodes its target jobs before building its DAG (the settings
    are attached to the workflow after the Snakefile is read, so the decoding wraps ``DAG.__init__``). Called
    from the Snakefile; a local run sends no target jobs and is untouched.

    Returns True when it installed the wrappers (False when they were already installed).
    """
    import snakemake.api  # noqa: F401  # first: snakemake.dag alone hits a circular import
    from snakemake.dag import DAG
    from snakemake_interface_executor_plugins.executors import real

    encode = real.encode_target_jobs_cli_args
    if getattr(encode, "mirflow_wrapped", False):
        return False

    def encode_target_jobs_cli_args(target_jobs):
        return encode(_map_wildcard_values(target_jobs, lambda value: encode_target_job_value(str(value))))

    encode_target_jobs_cli_args.mirflow_wrapped = True  # type: ignore[attr-defined]  # marker read back above
    real.encode_target_jobs_cli_args = encode_target_jobs_cli_args  # the name real.py calls

    init = DAG.__init__

    def __init__(self, dag_workflow, *args, **kwargs):
        settings = dag_workflow.dag_settings
        if dag_workflow.remote_exec and settings is not None and settings.target_jobs and \
                not getattr(dag_workflow, "mirflow_target_jobs_decoded", False):
            decoded = _map_wildcard_values(settings.target_jobs, decode_target_job_value)
            dag_workflow.dag_settings = dataclasses.replace(settings, target_jobs=decoded)
            dag_workflow.mirflow_target_jobs_decoded = True
        init(self, dag_workflow, *args, **kwargs)

    __init__.mirflow_wrapped = True  # type: ignore[attr-defined]
    DAG.__init__ = __init__  # Snakemake's DAG, wrapped for this process
    return True


def _map_wildcard_values(target_jobs, convert):
    """Snakemake's target job specs (``TargetSpec``: rule name, wildcards) with ``convert`` applied to each value."""
    return [spec._replace(wildcards_dict={key: convert(value) for key, value in spec.wildcards_dict.items()})
            for spec in target_jobs]
