"""Reading Snakemake's record of a run, the summary built from it, batches, the stale-lock check, `make help`."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from mirflow.batches import batch_count, parse_batch, select_batch
from mirflow.errors import ConfigError
from mirflow.run import (
    clear_stale_lock,
    config_value,
    count_tracks,
    is_snakemake_command,
    snakemake_processes,
    split_config,
)
from mirflow.runlog import (
    attempted_logs,
    finished_tracks,
    parse_log,
    read_record,
    record_entry,
    track_from_log,
    update_record,
)
from mirflow.summary import collect_failures, reason_group, render_summary

# Snakemake 9.27's own lines (copied from real runs): a job that raised, one killed by SIGKILL, one killed
# before it wrote a log, a finished merge and crops, progress.
BAND = "Band, The 'Quoted' é"
OUTPUT = f"""Job stats:
job                 count
----------------  -------
loudness                2
metadata                2
merge_info              2
crops                   2
all                     1
total                   9

Select jobs to execute...
[Fri Dec  4 15:53:21 2026]
localrule loudness:
    input: /m/bad.flac
    output: results/bad/features/loudness.json
    log: results/bad/logs/loudness.log
    jobid: 5
    reason: Missing output files: results/bad/features/loudness.json
    wildcards: track=bad
    resources: tmpdir=/tmp
[Fri Dec  4 15:53:21 2026]
localrule metadata:
    input: /m/{BAND}/full_mix.flac
    output: results/{BAND}/features/metadata.json
    log: results/{BAND}/logs/metadata.log
    jobid: 12
    reason: Missing output files: results/{BAND}/features/metadata.json
    wildcards: track={BAND}
    resources: tmpdir=/tmp
RuleException:
CalledProcessError in file "/w/workflow/rules/features.smk", line 189:
Command 'set -euo pipefail;  /v/bin/python /w/.snakemake/scripts/tmpzh057ljz.rule_family.py' died with <Signals.SIGKILL: 9>.
[Fri Dec  4 15:54:16 2026]
Error in rule metadata:
    message: None
    jobid: 12
    input: /m/{BAND}/full_mix.flac
    output: results/{BAND}/features/metadata.json
    log: results/{BAND}/logs/metadata.log (check log file(s) for error details)
Logfile results/{BAND}/logs/metadata.log not found.
RuleException:
CalledProcessError in file "/w/workflow/rules/features.smk", line 19:
Command 'set -euo pipefail;  /v/bin/python /w/.snakemake/scripts/tmpi_1o2av1.rule_family.py' returned non-zero exit status 1.
[Fri Dec  4 15:54:22 2026]
Error in rule loudness:
    message: None
    jobid: 5
    input: /m/bad.flac
    output: results/bad/features/loudness.json
    log: results/bad/logs/loudness.log (check log file(s) for error details)
Logfile results/bad/logs/loudness.log:
================================================================================
2026-12-04 15:54:19,527 INFO track=bad step=loudness mirflow=0.1.0
================================================================================
[Fri Dec  4 15:53:24 2026]
localrule merge_info:
    input: results/A/three/features/loudness.json, results/A/three/features/metadata.json
    output: results/A/three/three.INFO
    log: results/A/three/logs/merge_three.log
    jobid: 1
    wildcards: track=A/three, name=three
    resources: tmpdir=/tmp
[Fri Dec  4 15:53:25 2026]
Finished jobid: 1 (Rule: merge_info)
3 of 9 steps (33%) done
localrule crops:
    input: /m/A/three.flac, results/A/three/three.INFO
    output: results/A/three/crops
    log: results/A/three/logs/crops.log
    jobid: 13
    wildcards: parent=A/, name=three
[Fri Dec  4 15:53:27 2026]
Finished jobid: 13 (Rule: crops)
4 of 9 steps (44%) done
RuleException:
CalledProcessError in file "/w/workflow/rules/features.smk", line 19:
Command 'set -euo pipefail;  /v/bin/python /w/.snakemake/scripts/tmpq.rule_family.py' died with <Signals.SIGSEGV: 11>.
Error in rule timbral:
    jobid: 40
    log: results/seg/logs/timbral.log (check log file(s) for error details)
Exiting because a job execution failed. Look above for error messages
"""


@pytest.fixture()
def results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    logs = tmp_path / "results" / "bad" / "logs"
    logs.mkdir(parents=True)
    (logs / "loudness.log").write_text(
        "2026-12-04 15:54:19,527 INFO track=bad step=loudness mirflow=0.1.0\n"
        "2026-12-04 15:54:22,286 ERROR MIRFLOW-FAILED track='bad' step=loudness reason=cannot use audio file "
        "'/m/bad.flac': empty (0 bytes). Fix: remove it\n")
    seg = tmp_path / "results" / "seg" / "logs"
    seg.mkdir(parents=True)
    (seg / "timbral.log").write_text("2026-12-04 15:54:19,527 INFO track=seg step=timbral mirflow=0.1.0\n")
    return "results"


def test_every_failed_job_is_read_from_snakemakes_output_whatever_killed_it(results):
    state = parse_log(OUTPUT, results)
    assert state.total == 9 and state.done == 4 and state.rule_counts["crops"] == 2
    got = {(f.track, f.step): f for f in state.failures}
    assert set(got) == {(BAND, "metadata"), ("bad", "loudness"), ("seg", "timbral")}
    # Killed before writing anything: the signal is the reason, the log path is Snakemake's.
    killed = got[(BAND, "metadata")]
    assert killed.reason.startswith("killed (SIGKILL): out of memory") and killed.jobid == 12
    assert killed.log == os.path.abspath(f"results/{BAND}/logs/metadata.log")
    # A job that raised: mirflow's own message from its rule log, not Snakemake's exit status.
    assert got[("bad", "loudness")].reason == "cannot use audio file '/m/bad.flac': empty (0 bytes). Fix: remove it"
    assert got[("seg", "timbral")].reason == "crashed (SIGSEGV, segmentation fault in native code)"
    # The track whose last job (crops, since the run has crops) finished; wildcards with ", " do not matter.
    assert finished_tracks(state, results) == ["A/three"]


def test_track_and_step_come_from_the_log_path():
    assert track_from_log("results/Artist/Album/01 x/logs/merge_01 x.log", "results") == "Artist/Album/01 x"
    assert track_from_log("results/logs/corpus_report.log", "results") == ""
    assert track_from_log("/elsewhere/t/logs/a.log", "results") == ""


def test_run_record_sections_replace_each_other_and_feed_the_summary(results, tmp_path):
    state = parse_log(OUTPUT, results)
    update_record(results, "1/2", record_entry(state, started=0, ended=10, exit_code=1, log="x.log"))
    update_record(results, "2/2", record_entry(parse_log("", results), started=10, ended=20, exit_code=0, log=""))
    assert set(read_record(results)["sections"]) == {"1/2", "2/2"}
    assert len(collect_failures(results)) == 3
    # The same batch again (now clean) replaces only its own section; a split into 3 drops the split into 2.
    update_record(results, "1/2", record_entry(parse_log("", results), started=0, ended=1, exit_code=0, log=""))
    # Left: only the failure message still in bad's rule log (a rerun that succeeds rewrites that log).
    assert [(f["track"], f["step"]) for f in collect_failures(results)] == [("bad", "loudness")]
    update_record(results, "1/3", record_entry(state, started=0, ended=1, exit_code=1, log=""))
    assert set(read_record(results)["sections"]) == {"1/3"}
    update_record(results, "all", record_entry(parse_log("", results), started=0, ended=1, exit_code=0, log=""))
    assert set(read_record(results)["sections"]) == {"all"}


def test_summary_counts_tracks_not_crops_and_groups_failures_by_reason(results, tmp_path):
    root = tmp_path / "results"
    for tid in ("A/three", "one"):
        name = tid.rsplit("/", 1)[-1]
        (root / tid / "features").mkdir(parents=True)
        (root / tid / f"{name}.INFO").write_text("{}")
        (root / tid / "crops").mkdir()
        for i in range(3):
            (root / tid / "crops" / f"{name}_{i}.INFO").write_text("{}")
    (root / "half" / "features").mkdir(parents=True)
    (root / "early" / "logs").mkdir(parents=True)  # its first job is running: a log, no output yet
    (root / "stats").mkdir()
    (root / "stats" / "report_tracks.html").write_text("<html>")
    (root / "sat_config.json").write_text("{}")
    (root / "audiocraft").mkdir()
    (root / "audiocraft" / "tracks.jsonl").write_text("")
    state = parse_log(OUTPUT, results)
    update_record(results, "all", record_entry(state, started=0, ended=7200, exit_code=1, log="x.log",
                                               audio_s=3600 * 10, tracks_finished=40))
    text = render_summary(results)
    lines = text.splitlines()
    # 2 complete (6 crop .INFO files do not count), "half" and "early" started, 3 tracks with a failed job.
    assert "  tracks: 2 complete, 2 partial, 3 failed (of 7)" in lines
    assert "  processed: 40 track(s), 10.00 h of audio in 2h00m00s (5.00 s of audio per s, 20 tracks/h)" in lines
    assert "  failed jobs: 3 (3 reason(s)); each log has the details:" in lines
    assert "    1 x crashed (SIGSEGV, segmentation fault in native code)" in lines
    assert "    1 x cannot use audio file '…': empty (0 bytes)" in lines
    assert f"      {BAND} / metadata: results/{BAND}/logs/metadata.log" in lines
    assert "    report      results/stats/report_tracks.html" in lines
    assert "    SAT config  results/sat_config.json" in lines
    assert "    AudioCraft  results/audiocraft/tracks.jsonl" in lines
    assert lines[-1].startswith("    logs        results/logs/")


def test_reason_group_drops_file_names_and_details_but_keeps_the_cause():
    a = reason_group("cannot use audio file '/m/a.flac': no decoder could read it (soundfile: x 'y'). Fix: z")
    b = reason_group("cannot use audio file '/m/b c.flac': no decoder could read it (soundfile: q). Fix: z")
    assert a == b == "cannot use audio file '…': no decoder could read it"
    assert reason_group("crashed (SIGSEGV, segmentation fault in native code)") == \
        "crashed (SIGSEGV, segmentation fault in native code)"


def test_batches_partition_the_sorted_ids_stably():
    ids = [f"t{i:03d}" for i in range(103)]
    chunks = [select_batch(reversed(ids), f"{i}/7") for i in range(1, 8)]
    assert [x for c in chunks for x in c] == ids  # contiguous, disjoint, complete, in order
    assert {len(c) for c in chunks} == {14, 15} and [len(c) for c in chunks][:5] == [15] * 5
    assert select_batch(ids, None) == ids and select_batch([], "1/3") == []
    assert parse_batch(" 2 / 5 ") == (2, 5)
    for bad in ("0/3", "4/3", "x", "1/0"):
        with pytest.raises(ConfigError, match="i/n"):
            parse_batch(bad)
    assert batch_count(tracks=100_000, batch_size=5000) == 20 and batch_count(tracks=0, batch_size=10) == 1


def test_driver_arguments_merge_config_lists_and_find_results_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rest, items = split_config(["t", "--cores", "2", "--config", "a=1", "results_dir=r1", "-n", "-C", "b=2"])
    assert rest == ["t", "--cores", "2", "-n"] and items == ["a=1", "results_dir=r1", "b=2"]
    assert config_value("results_dir", items, rest, "results") == "r1"
    (tmp_path / "c.yaml").write_text("results_dir: from_file\n")
    assert config_value("results_dir", [], ["--configfile", "c.yaml"], "results") == "from_file"
    assert config_value("input_dir", [], ["--configfile", "c.yaml"], "demo") == "demo"
    music = tmp_path / "music"
    (music / "band").mkdir(parents=True)
    for name in ("band/full_mix.flac", "band/bass.flac", "a.mp3", "b.WAV", "notes.txt", ".hidden.wav"):
        (music / name).write_bytes(b"")
    (music / "results").mkdir()
    (music / "results" / "x.wav").write_bytes(b"")
    assert count_tracks(str(music), (str(music / "results"),)) == 3


def test_scheduler_processes_are_told_from_jobs():
    assert is_snakemake_command(["/v/bin/python", "-m", "snakemake", "--cores", "2"])
    assert is_snakemake_command(["/v/bin/python3.11", "/v/bin/snakemake", "-n"])
    assert is_snakemake_command(["/v/lib/python3.11/site-packages/snakemake/__main__.py"])
    assert not is_snakemake_command(["/v/bin/python", "/w/.snakemake/scripts/tmpab.rule_family.py"])
    assert not is_snakemake_command(["/v/bin/python", "-m", "mirflow.run", "--cores", "2"])


def test_stale_lock_is_removed_only_when_no_scheduler_runs_there(tmp_path):
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("x")
    # A live process that looks like a scheduler (its script is named snakemake) working in that folder.
    fake = tmp_path / "bin" / "snakemake"
    fake.parent.mkdir()
    fake.write_text("import time\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, str(fake)], cwd=tmp_path)
    try:
        for _ in range(50):
            if proc.pid in snakemake_processes(str(tmp_path)):
                break
            time.sleep(0.1)
        assert snakemake_processes(str(tmp_path)) == [proc.pid]
        with pytest.raises(RuntimeError, match=f"another Snakemake run \\(pid {proc.pid}\\)"):
            clear_stale_lock(str(tmp_path))
        assert (locks / "0.input.lock").is_file()
    finally:
        proc.kill()
        proc.wait()
    assert "removed the lock" in clear_stale_lock(str(tmp_path))
    assert not any(locks.iterdir()) and clear_stale_lock(str(tmp_path)) is None


def test_make_help_lists_every_target_once():
    proc = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    phony = next(line for line in (REPO / "Makefile").read_text().splitlines() if line.startswith(".PHONY:"))
    targets = phony.split(":", 1)[1].split()
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("make [target]")
    listed = [line.split()[0] for line in lines[1:]]
    assert sorted(listed) == sorted(targets), (listed, targets)
    assert all(len(line.split(None, 1)) == 2 for line in lines[1:])  # a description on every line


def test_make_run_calls_the_driver_with_one_config_list_and_v_for_verbose(tmp_path):
    # An install stamp newer than its prerequisites: `make -n` then only prints the run recipe (a makefile as
    # the stamp would be remade for real, even under -n).
    stamp = tmp_path / "installed"
    stamp.write_text("")
    proc = subprocess.run(["make", "-n", "run", "V=1", "INPUT=/music", "RESULTS=/r", "CORES=3", f"STAMP={stamp}",
                           "SNAKEMAKE_ARGS=--config families={metadata: false}"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stdout.replace("\\\n", " ").splitlines() if "mirflow.run" in line]
    assert line.startswith(".venv/bin/python -m mirflow.run -v ")
    rest, items = split_config(line.replace('"', "").split()[4:])
    assert rest == ["--cores", "3", "--configfile", "config/config.yaml"]
    assert items == ["results_dir=/r", "input_dir=/music", "families={metadata:", "false}"]


def test_quiet_console_condenses_the_startup_report_to_a_few_lines():
    from types import SimpleNamespace

    from mirflow.run import condense_startup
    from mirflow.summary import startup_report

    tracks = [SimpleNamespace(id=f"t{i}", stems={}, notes=[]) for i in range(3)]
    models = [(f"essentia_{i}", [f"essentia/{i}.pb"], ["classifiers (optional)"]) for i in range(17)]
    models += [("adtof_frame_rnn", [], ["drums"]), ("smollm2", ["s.gguf"], ["captions_feature"], False, True)]
    missing = {t.id: {"aesthetics": "model missing", "drums_stems": "no stems"} for t in tracks}
    report = startup_report("music", "results", tracks, missing, models).splitlines()
    assert len(report) > 20
    lines = condense_startup(report, Path("results/logs/snakemake/x.log"))
    assert lines == [
        "mirflow: 3 track(s) under 'music' (0 with provided stems); results in 'results'",
        "  models: 1 present, 1 fetched during the run, 17 missing (needed by classifiers: `make models` fetches them)",
        "  families skipped (tracks): aesthetics (3), drums_stems (3)",
        "  (the full start-up report, with every reason: results/logs/snakemake/x.log)"]


class _Stream:
    def __init__(self, tty: bool):
        self.tty, self.text = tty, ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def isatty(self):
        return self.tty


def test_progress_is_one_bar_on_a_terminal_and_ten_lines_elsewhere():
    from mirflow.run import Console

    pipe = _Stream(tty=False)
    console = Console(verbose=False, stream=pipe)
    console.start_bar(200)
    for done in range(1, 201):
        console.progress(done)
    lines = pipe.text.splitlines()
    assert len(lines) == 10 and lines[0].startswith("jobs: 20/200 jobs (10%), 0:00:00 elapsed, about")
    assert lines[-1].startswith("jobs: 200/200 jobs (100%)") and "left" not in lines[-1]
    tty = _Stream(tty=True)
    console = Console(verbose=False, stream=tty)
    console.label = "batch 2/3"
    console.start_bar(40)
    console.progress(10)
    console.write("done    a/b")
    console.progress(40)
    console.close_bar()
    assert "done    a/b\n" in tty.text and "batch 2/3: 100%" in tty.text and "40/40 jobs" in tty.text
    assert tty.text.count("\n") <= 3  # the bar redraws in place (carriage returns), one line at the end


def test_a_failed_run_keeps_the_earlier_failures_of_jobs_it_did_not_attempt(results):
    state = parse_log(OUTPUT, results)
    update_record(results, "all", record_entry(state, started=0, ended=1, exit_code=1, log=""), attempted_logs(state))
    # A later run of one target that failed again: bad's loudness. The other two jobs were not attempted.
    one = parse_log(OUTPUT.split("[Fri Dec  4 15:53:21 2026]\nlocalrule metadata:")[0]
                    + "Error in rule loudness:\n    jobid: 5\n    log: results/bad/logs/loudness.log\n", results)
    assert [f.step for f in one.failures] == ["loudness"]
    update_record(results, "all", record_entry(one, started=2, ended=3, exit_code=1, log=""), attempted_logs(one))
    assert sorted((f["track"], f["step"]) for f in collect_failures(results)) == [
        (BAND, "metadata"), ("bad", "loudness"), ("seg", "timbral")]
    # A run that succeeded completed its whole DAG: nothing is carried over.
    empty = parse_log("", results)
    update_record(results, "all", record_entry(empty, started=4, ended=5, exit_code=0, log=""), attempted_logs(empty))
    assert read_record(results)["sections"]["all"]["failures"] == []


def test_a_failure_whose_job_wrote_its_log_again_in_this_run_is_not_carried(results):
    """A cluster group job's members are not listed in Snakemake's log; a job that ran again in this run
    (its log written since the run started) and did not fail again is no longer a failure."""
    import os
    import time

    state = parse_log(OUTPUT, results)
    update_record(results, "all", record_entry(state, started=0, ended=1, exit_code=1, log=""), attempted_logs(state))
    before = {(f["track"], f["step"]) for f in collect_failures(results)}
    assert ("seg", "timbral") in before and len(before) == 3
    rerun_started = time.time()
    seg_log = next(f["log"] for f in read_record(results)["sections"]["all"]["failures"] if f["track"] == "seg")
    os.makedirs(os.path.dirname(seg_log), exist_ok=True)
    with open(seg_log, "w") as log:  # the group job ran seg's step again and it succeeded
        log.write("computed timbral in 1.0 s\n")
    empty = parse_log("", results)
    update_record(results, "all", record_entry(empty, started=rerun_started, ended=rerun_started + 1, exit_code=1,
                                               log=""), attempted_logs(empty), started=rerun_started)
    assert {(f["track"], f["step"]) for f in collect_failures(results)} == before - {("seg", "timbral")}


def test_a_failure_of_a_track_whose_info_was_written_in_this_run_is_not_carried(results):
    """A cluster rerun finished a track whose step had failed with its group before (the group's members are not
    in Snakemake's log, and a kept step need not rewrite its log): its .INFO written in this run says every step
    before the merge succeeded."""
    import os
    import time

    state = parse_log(OUTPUT, results)
    update_record(results, "all", record_entry(state, started=0, ended=1, exit_code=1, log=""), attempted_logs(state))
    before = {(f["track"], f["step"]) for f in collect_failures(results)}
    rerun_started = time.time()
    info = os.path.join(results, "seg", "seg.INFO")
    os.makedirs(os.path.dirname(info), exist_ok=True)
    with open(info, "w") as out:
        out.write("{}")
    empty = parse_log("", results)
    update_record(results, "all", record_entry(empty, started=rerun_started, ended=rerun_started + 1, exit_code=1,
                                               log=""), attempted_logs(empty), started=rerun_started)
    assert {(f["track"], f["step"]) for f in collect_failures(results)} == before - {("seg", "timbral")}
