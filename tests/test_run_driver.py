"""`make run`'s driver (python -m mirflow.run) end to end on a tiny corpus: the quiet console, failed jobs
whatever killed them, a run killed with SIGKILL resuming by itself, the lock of a live run left alone, batches.

Only the two cheapest families (loudness, metadata) and the crops run, on 3 s tracks, so each run takes a few
seconds. tests/fixtures/jobfault makes one job die by a signal or stall (see its docstring).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from mirflow.registry import FAMILIES

pytestmark = pytest.mark.slow
SNAKEFILE = REPO / "workflow" / "Snakefile"
FAULT = REPO / "tests" / "fixtures" / "jobfault"
SR = 22050
KEEP = {"loudness", "metadata"}


def _corpus(wd: Path, names: list[str], *, workers: bool = True) -> None:
    shutil.copytree(REPO / "config", wd / "config")
    text = (wd / "config" / "config.yaml").read_text()
    for fam in FAMILIES:
        if fam not in KEEP:
            text, n = re.subn(rf"^  {fam}: true$", f"  {fam}: false", text, flags=re.MULTILINE)
            if n == 0:  # a family config.yaml does not name is on: switch it off explicitly
                text, n = re.subn(r"^families:$", f"families:\n  {fam}: false", text, flags=re.MULTILINE)
            assert n == 1, fam
    if not workers:
        # Jobs compute in their own process, so that tests/fixtures/jobfault can kill the very job Snakemake
        # runs (the warm-worker path has its own crash tests in tests/test_workers.py).
        text, n = re.subn(r"^workers:\n  enabled: true$", "workers:\n  enabled: false", text, flags=re.MULTILINE)
        assert n == 1
    (wd / "config" / "config.yaml").write_text(text.replace("length_samples: 2097152", "length_samples: 44100"))
    t = np.arange(int(SR * 3)) / SR
    for i, name in enumerate(names):
        path = wd / "music" / f"{name}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        x = 0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t)
        sf.write(path, np.stack([x, x], axis=1).astype(np.float32), SR)


def _env(fault: str | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FAULT), str(REPO / "scripts"),
                                                        os.environ.get("PYTHONPATH", "")])}
    env.pop("MIRFLOW_DRIVER", None)
    if fault:
        env["MIRFLOW_TEST_FAULT"] = fault
    return env


def _cmd(*args: str) -> list[str]:
    # As the Makefile calls it: options, then one --config list.
    return [sys.executable, "-m", "mirflow.run", *args, "-s", str(SNAKEFILE), "--cores", "2",
            "--config", "input_dir=music", "results_dir=results"]


def drive(wd: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(*args), cwd=wd, env=_env(fault), capture_output=True, text=True, timeout=600)


def _infos(wd: Path) -> list[str]:
    return sorted(p.relative_to(wd / "results").as_posix() for p in (wd / "results").rglob("*.INFO")
                  if "crops" not in p.parts)


@pytest.fixture(scope="module")
def one_track(tmp_path_factory):
    wd = tmp_path_factory.mktemp("driver1")
    _corpus(wd, ["Artist/One, 'Song'"])
    return wd


def test_one_track_console_is_short_and_the_full_record_is_in_the_log(one_track):
    proc = drive(one_track)
    console = proc.stdout + proc.stderr
    assert proc.returncode == 0, console
    lines = console.splitlines()
    assert len(lines) <= 60, console
    # The track index's line, then the condensed start-up report.
    assert lines[0].startswith("mirflow: track index rebuilt (no index yet)")
    assert lines[1].startswith("mirflow: 1 track(s) under 'music'")
    assert "done    Artist/One, 'Song'" in lines
    assert "  tracks: 1 complete, 0 partial, 0 failed (of 1)" in lines
    assert any(line.startswith("  processed: 1 track(s), 0.00 h of audio") for line in lines)
    assert "    SAT config  results/sat_config.json" in lines
    assert "localrule" not in console and "Finished jobid" not in console
    (log,) = (one_track / "results" / "logs" / "snakemake").glob("*.log")
    record = log.read_text()
    assert "localrule track_features:" in record and "Finished jobid" in record and "steps (100%) done" in record
    # -v: Snakemake's own output on the console (here: the no-op rerun's).
    verbose = drive(one_track, "-v")
    assert verbose.returncode == 0 and "Nothing to be done" in verbose.stdout
    assert "Building DAG of jobs" in verbose.stdout


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    wd = tmp_path_factory.mktemp("driver3")
    _corpus(wd, ["A/three", "one", "two"], workers=False)
    return wd


def test_a_killed_job_is_listed_with_track_step_reason_and_log_then_a_rerun_completes(three):
    proc = drive(three, fault="results/two/features/metadata.json:KILL")
    console = proc.stderr
    assert proc.returncode != 0, console
    assert "FAILED  two / track_features: killed (SIGKILL): out of memory" in console
    assert "        log: results/two/logs/track_features.log" in console
    assert "  tracks: 2 complete, 0 partial, 1 failed (of 3)" in console
    record = json.loads((three / "results" / "logs" / "run_record.json").read_text())
    (failure,) = record["sections"]["all"]["failures"]
    # A killed process cannot say which family it was in: the failure names the step (the job).
    assert (failure["track"], failure["step"]) == ("two", "track_features")
    assert failure["log"] == str(three / "results" / "two" / "logs" / "track_features.log")
    # `make summary` reads the same record.
    summary = subprocess.run([sys.executable, "-m", "mirflow.summary", "results"], cwd=three, env=_env(),
                             capture_output=True, text=True, timeout=120)
    assert "    1 x killed (SIGKILL): out of memory (the kernel's OOM killer; see `dmesg`), a timeout or a user" \
        in summary.stdout and "      two / track_features: results/two/logs/track_features.log" in summary.stdout
    # A segfault is named as such; the rerun redoes only the failed job and what follows it.
    proc = drive(three, fault="results/two/features/metadata.json:SEGV")
    assert "FAILED  two / track_features: crashed (SIGSEGV, segmentation fault in native code)" in proc.stderr
    proc = drive(three)
    assert proc.returncode == 0, proc.stderr
    assert "done    two" in proc.stderr and "done    one" not in proc.stderr
    assert "  failed jobs: none" in proc.stderr and "  tracks: 3 complete, 0 partial, 0 failed (of 3)" in proc.stderr
    assert _infos(three) == ["A/three/three.INFO", "one/one.INFO", "two/two.INFO"]


def test_direct_snakemake_prints_the_same_summary_once(three):
    shutil.rmtree(three / "results" / "one")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--cores", "2", "--config", "input_dir=music",
           "results_dir=results"]
    proc = subprocess.run(cmd, cwd=three, env=_env("results/one/features/loudness.json:SEGV"), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode != 0
    assert proc.stderr.count("mirflow summary:") == 1
    assert "      one / track_features: results/one/logs/track_features.log" in proc.stderr
    assert "    1 x crashed (SIGSEGV, segmentation fault in native code)" in proc.stderr
    assert drive(three).returncode == 0


def _started(wd: Path, output: str) -> bool:
    """Whether Snakemake has started the job writing ``output`` (its record names the job when it starts)."""
    return any(line.lstrip().startswith("output: ") and output in line
               for p in (wd / "results" / "logs" / "snakemake").glob("*.log")
               for line in p.read_text(errors="replace").splitlines())


def _wait_for(predicate, timeout=120.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_sigkill_of_the_whole_run_resumes_without_a_manual_step_and_a_live_run_keeps_its_lock(tmp_path):
    _corpus(tmp_path, ["a", "b", "c"])
    # Power loss: kill -9 the driver, Snakemake and its jobs together while a job runs.
    proc = subprocess.Popen(_cmd(), cwd=tmp_path, env=_env("results/b/features/loudness.json:SLEEP60"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    locks = tmp_path / ".snakemake" / "locks"
    try:
        assert _wait_for(lambda: _started(tmp_path, "results/b/features/loudness.json"))
        # While it runs, a second run leaves the lock alone and says who holds the folder.
        second = drive(tmp_path)
        assert second.returncode == 1 and "another Snakemake run (pid" in second.stderr, second.stderr
        assert any(locks.iterdir())
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert any(locks.iterdir()) and any((tmp_path / ".snakemake" / "incomplete").iterdir())
    # Plain snakemake would now stop with "Directory cannot be locked"; the driver resumes.
    proc = drive(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "mirflow: removed the lock left by an interrupted run" in proc.stderr
    assert _infos(tmp_path) == ["a/a.INFO", "b/b.INFO", "c/c.INFO"]
    assert not any((tmp_path / ".snakemake" / "incomplete").glob("*"))
    loud = json.loads((tmp_path / "results" / "b" / "features" / "loudness.json").read_text())
    assert isinstance(loud["lufs"], float)


def test_batches_each_run_their_own_tracks_and_an_interrupted_split_resumes_at_its_batch(tmp_path):
    _corpus(tmp_path, ["t1", "t2", "t3", "t4", "t5"])
    # Interrupt the split run during batch 2 (of 3: t1 t2 | t3 t4 | t5).
    proc = subprocess.Popen(_cmd("--batch-size", "2"), cwd=tmp_path, start_new_session=True,
                            env=_env("results/t3/features/loudness.json:SLEEP60"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    logs = tmp_path / "results" / "logs" / "snakemake"
    try:
        assert _wait_for(lambda: _started(tmp_path, "results/t3/features/loudness.json"))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert {"t1/t1.INFO", "t2/t2.INFO"} <= set(_infos(tmp_path)) and "t3/t3.INFO" not in _infos(tmp_path)
    first_logs = {p.name for p in logs.glob("*.log")}
    assert {re.sub(r"^\d+-\d+", "", n) for n in first_logs} == {"-batch1of3.log", "-batch2of3.log"}
    proc = drive(tmp_path, "--batch-size", "2")
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "mirflow: about 5 tracks under 'music': 3 batches of about 2 tracks, each its own Snakemake run; " \
           "resuming: 1 batch(es) finished in the interrupted run" in err
    assert "batch 1/3: finished in an earlier attempt of this run, skipped" in err
    assert re.search(r"^batch 2/3: \d+/\d+ jobs, 0 failed, 2 track\(s\) finished", err, re.MULTILINE)
    assert re.search(r"^batch 3/3: \d+/\d+ jobs, 0 failed, 1 track\(s\) finished", err, re.MULTILINE)
    new_logs = {re.sub(r"^\d+-\d+", "", p.name) for p in logs.glob("*.log")} - {re.sub(r"^\d+-\d+", "", n)
                                                                               for n in first_logs}
    assert new_logs == {"-batch3of3.log", "-corpus.log"}
    # Each batch's DAG held only its tracks; the corpus pass ran the corpus rules over all 5.
    batch3 = next(logs.glob("*-batch3of3.log")).read_text()
    assert "mirflow: 1 track(s) under 'music'" in batch3 and "results/t4/" not in batch3
    assert _infos(tmp_path) == [f"t{i}/t{i}.INFO" for i in range(1, 6)]
    sat = json.loads((tmp_path / "results" / "sat_index.json").read_text())
    assert len(json.dumps(sat)) and all(f"t{i}.INFO" in json.dumps(sat) for i in range(1, 6))
    assert not (tmp_path / "results" / "logs" / "batches.json").exists()  # a finished split run starts afresh
    record = json.loads((tmp_path / "results" / "logs" / "run_record.json").read_text())
    assert set(record["sections"]) >= {"2/3", "3/3", "corpus/3"}
    assert "  tracks: 5 complete, 0 partial, 0 failed (of 5)" in err


def test_a_failure_in_a_shared_cluster_group_asks_for_one_more_pass():
    from mirflow.run import held_back_by_a_group

    # As runlog.add_cluster_failures records them: the submission's group beside the reason.
    shared = {"failures": [{"reason": "SLURM job 10 (group signal) failed: Error in group signal",
                            "slurm_group": "signal"}]}
    alone = {"failures": [{"reason": "SLURM job 12 (group signal_alone_0123456789ab) failed: Error in group x",
                           "slurm_group": "signal_alone_0123456789ab"}]}
    local = {"failures": [{"reason": "cannot use audio file 'bad.flac': decoder error"}]}
    assert held_back_by_a_group(shared)
    assert not held_back_by_a_group(alone) and not held_back_by_a_group(local) and not held_back_by_a_group({})
