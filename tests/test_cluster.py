"""mirflow.cluster: failed jobs of a cluster run mapped to their SLURM job id and SLURM log.

The log below is an excerpt of a real run (tests/slurm/test_slurm.py on a single-node SLURM 22.05, plugin
2.8.0): SLURM job 2, a group of four signal jobs, was killed mid-run; job 3 and the single-rule jobs completed.
Paths shortened to /w.
"""
from __future__ import annotations

import asyncio
import sys
import types
from pathlib import Path

import pytest

from mirflow.cluster import (
    FailedJob,
    failed_slurm_jobs,
    fix_slurm_cancelled_state,
    keep_going_inside_cluster_job,
    latest_snakemake_log,
    slurm_state,
    slurm_submissions,
)

GROUP_LOG = "/w/.snakemake/slurm_logs/group_signal_loudness_multiband_rms_stems_spectral_spectral_stems/2.log"
RUN_LOG = f"""\
Job 707d8c9e-7bf1-5018-aabf-542acac85716 has been submitted with SLURM jobid 3 (log: /w/.snakemake/slurm_logs/group_signal_descriptors_metadata_multiband_rms_multiband_rms_stems_spectral_.../3.log).
Job bc25b992-63c5-5e6d-94a7-4df7aa71633f has been submitted with SLURM jobid 2 (log: {GROUP_LOG}).
Job 22 has been submitted with SLURM jobid 5 (log: /w/.snakemake/slurm_logs/rule_corpus_report/5.log).
[Fri Dec  4 16:42:42 2026]
    message: Error in group signal
    log: {GROUP_LOG} (check log file(s) for error details)
    jobs:
        rule spectral_stems:
            jobid: 5
            output: results/Band/features/spectral_stems.json
            log: results/Band/logs/spectral_stems.log (check log file(s) for error details)
        rule loudness:
            jobid: 2
            output: results/Band/features/loudness.json
            log: results/Band/logs/loudness.log (check log file(s) for error details)
        rule spectral:
            jobid: 18
            output: results/loose/features/spectral.json
            log: results/loose/logs/spectral.log (check log file(s) for error details)
        rule multiband_rms_stems:
            jobid: 7
            output: results/Band/features/multiband_rms_stems.json
            log: results/Band/logs/multiband_rms_stems.log (check log file(s) for error details)
Logfile {GROUP_LOG}:
================================================================================
slurmstepd-vm: error: *** JOB 2 ON vm CANCELLED AT 2026-12-04T16:42:02 ***

SNAKEMAKE
=========
  Workflow ID: 12ce9041-b6fa-416a-9409-2cdfc48df51e
srun: error: Slurm job 2 has expired
[Fri Dec  4 16:42:02 2026]
Error in rule multiband_rms_stems:
    message: None
    jobid: 3
    output: results/Band/features/multiband_rms_stems.json
    log: results/Band/logs/multiband_rms_stems.log (check log file(s) for error details)
Logfile results/Band/logs/multiband_rms_stems.log:
================================================================================
mirflow: track=Band step=multiband_rms_stems reason=killed
================================================================================
[Fri Dec  4 16:42:02 2026]
Error in rule spectral:
    message: None
    jobid: 4
    output: results/loose/features/spectral.json
Exiting because a job execution failed. Look above for error messages
================================================================================
Logfile results/Band/logs/spectral_stems.log not found.
    [Fri Dec  4 16:42:42 2026]
    Error in rule loudness:
        message: None
        jobid: 2
        input: /w/music/Band/full_mix.flac
        output: results/Band/features/loudness.json
        log: results/Band/logs/loudness.log (check log file(s) for error details)
    Logfile results/Band/logs/loudness.log:
    ================================================================================
    Error in rule timbral:
        jobid: 99
    ================================================================================
"""
# A single-rule submission that failed (the format of snakemake's job error plus the plugin's message).
RULE_LOG = """\
Job 43 has been submitted with SLURM jobid 4711 (log: /w/.snakemake/slurm_logs/rule_corpus_report/4711.log).
[Fri Dec  4 16:50:00 2026]
Error in rule corpus_report:
    message: SLURM-job '4711' failed, SLURM status is: 'OUT_OF_MEMORY'. For further error details see the cluster/cloud log and the log files of the involved rule(s).
    jobid: 43
    output: results/stats/features_tracks.csv, results/stats/stats_tracks.json
    log: results/logs/corpus_report.log, /w/.snakemake/slurm_logs/rule_corpus_report/4711.log (check log file(s) for error details)
    external_jobid: 4711
"""


def test_submissions_map_snakemake_jobs_and_groups_to_slurm_ids_and_logs():
    subs = slurm_submissions(RUN_LOG)
    assert subs["bc25b992-63c5-5e6d-94a7-4df7aa71633f"] == ("2", GROUP_LOG)
    assert subs["22"] == ("5", "/w/.snakemake/slurm_logs/rule_corpus_report/5.log")
    assert len(subs) == 3


def test_every_job_of_a_failed_group_names_the_group_s_slurm_job_and_log():
    failed = failed_slurm_jobs(RUN_LOG)
    assert [f.jobid for f in failed] == ["5", "2", "18", "7"]  # the inner run's jobs 3, 4 and 99 are not the run's
    assert {f.slurm_jobid for f in failed} == {"2"}
    assert {f.slurm_log for f in failed} == {GROUP_LOG}
    assert {f.group for f in failed} == {"signal"}
    loudness = next(f for f in failed if f.rule == "loudness")
    assert loudness == FailedJob(rule="loudness", jobid="2", output=("results/Band/features/loudness.json",),
                                 log=("results/Band/logs/loudness.log",), slurm_jobid="2", slurm_log=GROUP_LOG,
                                 group="signal")
    assert ("spectral", ("results/loose/features/spectral.json",)) in [(f.rule, f.output) for f in failed]


def test_a_failed_single_rule_submission_names_its_slurm_job_and_log():
    (failed,) = failed_slurm_jobs(RULE_LOG)
    assert (failed.rule, failed.jobid, failed.slurm_jobid) == ("corpus_report", "43", "4711")
    assert failed.slurm_log == "/w/.snakemake/slurm_logs/rule_corpus_report/4711.log"
    assert failed.output == ("results/stats/features_tracks.csv", "results/stats/stats_tracks.json")
    assert failed.group is None and "OUT_OF_MEMORY" in failed.message


def test_a_local_run_or_a_clean_run_has_no_slurm_failures(tmp_path):
    assert failed_slurm_jobs("Finished jobid: 0 (Rule: all)\n45 of 45 steps (100%) done\n") == []
    assert latest_snakemake_log(tmp_path) is None
    logs = tmp_path / ".snakemake" / "log"
    logs.mkdir(parents=True)
    for name in ("2026-12-04T161742.455831.snakemake.log", "2026-12-04T163008.134628.snakemake.log"):
        (logs / name).write_text("")
    assert latest_snakemake_log(tmp_path).name == "2026-12-04T163008.134628.snakemake.log"


def test_the_run_record_and_the_summary_name_each_failed_job_s_slurm_job(tmp_path):
    from mirflow.runlog import record_snakemake_log
    from mirflow.summary import render_summary

    results = tmp_path / "results"
    (results / "Band" / "logs").mkdir(parents=True)
    log = tmp_path / "run.snakemake.log"
    # The excerpt's relative paths as the head process sees them: results/ under the working folder.
    log.write_text(RUN_LOG.replace("results/", f"{results}/"), encoding="utf-8")
    entry = record_snakemake_log(str(results), str(log), section="all", started=0.0, exit_code=1)
    by_step = {(f["track"], f["step"]): f for f in entry["failures"]}
    # Every job of the killed group submission, each naming SLURM job 2 and its log, once.
    for key in [("Band", "spectral_stems"), ("Band", "loudness"), ("loose", "spectral"),
                ("Band", "multiband_rms_stems")]:
        assert by_step[key]["slurm_jobid"] == "2", key
        assert by_step[key]["slurm_log"] == GROUP_LOG
    assert len(entry["failures"]) == len(by_step)
    text = render_summary(str(results), run=entry)
    assert f"SLURM job 2, log {GROUP_LOG}" in text


def test_slurm_state_drops_the_cancelling_user_and_keeps_every_one_word_state():
    assert slurm_state("CANCELLED by 0") == "CANCELLED"
    assert slurm_state("CANCELLED by 1000") == "CANCELLED"
    for state in ("COMPLETED", "FAILED", "RUNNING", "PENDING", "OUT_OF_MEMORY", "NODE_FAIL", ""):
        assert slurm_state(state) == state


def test_the_plugin_s_status_query_returns_cancelled_for_a_plain_scancel(monkeypatch):
    """A stand-in plugin module whose query returns sacct's raw states: after the fix the plugin's own name
    returns them without the qualifier, so its ``status in fail_stati`` check matches; a second call is a no-op."""
    calls = []

    async def raw(command, logger):
        calls.append(command)
        return {"11": "CANCELLED by 0", "12": "COMPLETED", "13": "RUNNING"}, 0.01

    fake = types.ModuleType("snakemake_executor_plugin_slurm")
    fake.query_job_status = raw
    monkeypatch.setitem(sys.modules, "snakemake_executor_plugin_slurm", fake)
    assert fix_slurm_cancelled_state() is True
    assert fix_slurm_cancelled_state() is False  # a re-parse (a second Snakefile include) wraps once
    status, duration = asyncio.run(fake.query_job_status("sacct ...", None))
    assert status == {"11": "CANCELLED", "12": "COMPLETED", "13": "RUNNING"} and duration == 0.01
    assert calls == ["sacct ..."]

    async def failed(command, logger):
        return None, None

    fake.query_job_status = failed
    fix_slurm_cancelled_state()
    assert asyncio.run(fake.query_job_status("sacct ...", None)) == (None, None)


def test_without_the_plugin_loaded_nothing_is_patched(monkeypatch):
    monkeypatch.delitem(sys.modules, "snakemake_executor_plugin_slurm", raising=False)
    assert fix_slurm_cancelled_state() is False


def test_the_installed_plugin_looks_the_status_query_up_by_name_at_each_check(monkeypatch):
    """The fix relies on the plugin calling ``query_job_status`` through its module globals and comparing
    exact state names; fail here (not silently on a cluster) if a plugin release changes either."""
    plugin = pytest.importorskip("snakemake_executor_plugin_slurm")
    import inspect
    source = inspect.getsource(plugin.Executor.check_active_jobs)
    assert "await query_job_status(" in source and "status in fail_stati" in source
    monkeypatch.setattr(plugin, "query_job_status", plugin.query_job_status)  # restored after the test
    assert fix_slurm_cancelled_state() is True
    assert plugin.query_job_status.mirflow_wrapped


_GROUP_SNAKEFILE = """
import mirflow.cluster
if config.get("fix"):
    mirflow.cluster.keep_going_inside_cluster_job(workflow)

rule bad:
    output: "out/{i}.bad"
    priority: 10
    shell: "exit 1"

rule good:
    output: "out/{i}.good"
    shell: "echo ok > {output}"
"""


@pytest.mark.parametrize("fix", [False, True])
def test_inside_a_cluster_job_a_failed_job_does_not_stop_the_other_tracks_jobs(tmp_path, fix):
    """What a group job runs: `snakemake --mode remote --target-jobs <its jobs>`. The failing job runs first
    (priority); without the fix Snakemake stops there and the other job never runs, with it the other job's
    output is written and the run still fails (so the head reports the failure)."""
    import os
    import subprocess
    (tmp_path / "Snakefile").write_text(_GROUP_SNAKEFILE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "scripts"),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", "Snakefile", "--mode", "remote",
                           "--target-jobs", "bad:i=1", "good:i=2", "--cores", "1", "--config", f"fix={int(fix)}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0, proc.stderr[-2000:]
    assert "Error in rule bad" in proc.stderr
    assert (tmp_path / "out" / "2.good").is_file() is fix, proc.stderr[-2000:]


def test_keep_going_is_left_alone_outside_a_cluster_job():
    head = types.SimpleNamespace(remote_exec=False)  # the head process or a local run: the user's choice holds
    assert keep_going_inside_cluster_job(head) is False


def test_flag_annotations_of_outputs_are_not_part_of_their_paths():
    """Snakemake writes an update() output as `path (update)` in its job blocks (the layout's family partials)."""
    text = RULE_LOG.replace("    output: results/stats/features_tracks.csv, results/stats/stats_tracks.json",
                            "    output: results/t/logs/probe.json, results/t/features/loudness.json (update), "
                            "results/t/embeddings (update)")
    (failed,) = failed_slurm_jobs(text)
    assert failed.output == ("results/t/logs/probe.json", "results/t/features/loudness.json", "results/t/embeddings")


def test_a_track_folder_with_a_comma_stays_one_path_in_a_failed_job_s_fields():
    """Snakemake joins a job's paths with ", ", which a track folder may hold ("Café Waltz, D major"); the
    SLURM log after the track's log is absolute and stays apart."""
    text = RULE_LOG.replace(
        "    output: results/stats/features_tracks.csv, results/stats/stats_tracks.json",
        "    output: results/Café Waltz, D major/logs/probe.json, results/Café Waltz, D major/features/loudness.json"
        " (update), results/x, y, z/a.json").replace(
        "    log: results/logs/corpus_report.log,",
        "    log: results/Café Waltz, D major/logs/track_features.log,")
    (failed,) = failed_slurm_jobs(text)
    assert failed.output == ("results/Café Waltz, D major/logs/probe.json",
                             "results/Café Waltz, D major/features/loudness.json", "results/x, y, z/a.json")
    assert failed.log == ("results/Café Waltz, D major/logs/track_features.log",
                          "/w/.snakemake/slurm_logs/rule_corpus_report/4711.log")


TRACK_NAMES = ["Café Waltz, D major", "Beatles, The", "'Quoted'", '"Double"', "100% a=b: c", "caf\udce9"]


@pytest.mark.parametrize("name", TRACK_NAMES)
def test_a_wildcard_value_survives_snakemake_s_target_jobs_parser_when_encoded(name):
    """Snakemake's own parser (what a cluster job runs before reading the workflow) gives the encoded value
    back unchanged, and decoding it gives the track's name back."""
    from snakemake.target_jobs import parse_target_jobs_cli_args
    from snakemake_interface_executor_plugins.utils import TargetSpec, encode_target_jobs_cli_args

    from mirflow.cluster import decode_target_job_value, encode_target_job_value
    args = encode_target_jobs_cli_args([TargetSpec("track_info", {"track": encode_target_job_value(name),
                                                                  "x": "1"})])
    (spec,) = parse_target_jobs_cli_args(args)
    assert decode_target_job_value(spec.wildcards_dict["track"]) == name
    assert spec.wildcards_dict["x"] == "1"
    assert encode_target_job_value(name).isascii() and "," not in encode_target_job_value(name)


def test_unencoded_a_comma_in_a_wildcard_breaks_snakemake_s_parser():
    """The upstream behaviour the encoding works around (snakemake#2366): if this starts passing, Snakemake
    fixed it and the encoding can go."""
    from snakemake.target_jobs import parse_target_jobs_cli_args
    from snakemake_interface_executor_plugins.utils import TargetSpec, encode_target_jobs_cli_args
    args = encode_target_jobs_cli_args([TargetSpec("r", {"track": "Beatles, The"})])
    with pytest.raises(ValueError, match="Unparsable"):
        parse_target_jobs_cli_args(args)


_COMMA_SNAKEFILE = """
import mirflow.cluster
if config.get("fix"):
    mirflow.cluster.carry_any_track_name_to_cluster_jobs()

rule track:
    output: "out/{track}/done.txt"
    shell: "printf %s {wildcards.track:q} > {output:q}"
"""


@pytest.mark.parametrize("fix", [False, True])
def test_a_cluster_job_of_a_track_with_a_comma_in_its_name_runs_it(tmp_path, monkeypatch, fix):
    """The head's executor encodes a job's wildcards (through the interface's encoder, wrapped like the
    workflow does it); the cluster job (`snakemake --mode remote --target-jobs ...`) then builds that track."""
    import os
    import subprocess

    import snakemake.api  # noqa: F401  # before snakemake.dag (circular imports)
    from snakemake.dag import DAG
    from snakemake_interface_executor_plugins.executors import real
    from snakemake_interface_executor_plugins.utils import TargetSpec

    from mirflow.cluster import carry_any_track_name_to_cluster_jobs
    monkeypatch.setattr(real, "encode_target_jobs_cli_args", real.encode_target_jobs_cli_args)  # restored after
    monkeypatch.setattr(DAG, "__init__", DAG.__init__)
    if fix:
        assert carry_any_track_name_to_cluster_jobs() is True
        assert carry_any_track_name_to_cluster_jobs() is False  # once per process
    names = ["Café Waltz, D major", "100% pure, 'live'"]
    args = real.encode_target_jobs_cli_args([TargetSpec("track", {"track": n}) for n in names])
    (tmp_path / "Snakefile").write_text(_COMMA_SNAKEFILE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "scripts"),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", "Snakefile", "--mode", "remote",
                           "--target-jobs", *args, "--cores", "1", "--config", f"fix={int(fix)}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    if not fix:
        assert proc.returncode != 0 and "Unparsable" in proc.stderr, proc.stderr[-2000:]
        return
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = {p.parent.name: p.read_text() for p in (tmp_path / "out").glob("*/done.txt")}
    assert done == {n: n for n in names}
