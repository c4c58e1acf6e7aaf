"""Warm workers (mirflow.worker, mirflow.client): one model load for many tracks, isolation of crashing
and hanging jobs, race-free start, exit with Snakemake, and values identical to the in-process path."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from conftest import REPO
from mirflow.client import lane_paths, run_in_worker
from mirflow.jobspec import execute
from mirflow.worker import _alive

TESTS = str(Path(__file__).resolve().parent)
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.fixture
def conf(tmp_path, monkeypatch):
    """Worker settings of a fresh state folder; every worker started under it is stopped afterwards."""
    # The workers the client starts inherit this environment: they can import tests/worker_fixture.py.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH")) if p))
    settings = {"enabled": True, "dir": str(tmp_path / "state"), "idle_exit_s": 60, "timeout_s": {"default": 60},
                "snakemake_pid": os.getpid()}
    yield settings
    for lane in ("cpu", "gpu"):
        pid = worker_pid(settings, lane)
        if pid:
            os.kill(pid, signal.SIGTERM)
            wait_gone(pid)


def worker_pid(conf: dict, lane: str) -> int | None:
    path = Path(lane_paths(conf["dir"], lane)["pid"])
    return int(path.read_text()) if path.exists() else None


def wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):  # gone, or a zombie: the worker is started by this process and not reaped
            return True
        time.sleep(0.05)
    return False


def request(tmp_path: Path, name: str, entry: str = "worker_fixture:job", lane: str = "cpu", timeout_s=None,
            owner_pid: int | None = None, **kw) -> dict:
    """A job spec as the workflow's shell command would send it."""
    spec = {"entry": entry, "rule": kw.pop("rule", "crashy"), "lane": lane,
            "input": list(kw.pop("inputs", {}).items()),
            "output": kw.pop("outputs", [[None, str(tmp_path / f"{name}.out")]]),
            "params": kw.pop("params", {}), "wildcards": {"track": f"Artist/{name}"},
            "log": [str(tmp_path / "logs" / f"{name}.log")], "threads": 1, "cwd": str(tmp_path),
            "env": dict(os.environ), "timeout_s": timeout_s, "owner_pid": owner_pid or os.getpid()}
    assert not kw, kw
    return spec


def crashy(tmp_path, name, behaviour, **kw):
    return request(tmp_path, name, params={"behaviour": behaviour}, **kw)


def test_thin_client_imports_no_heavy_library():
    code = ("import sys; import mirflow.client, mirflow.jobspec; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'scipy', 'yaml', 'torch', 'essentia', "
            "'soundfile', 'madmom', 'librosa', 'onnxruntime'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "scripts")})
    assert out.stdout.strip() == "[]"


def test_basic_pitch_is_loaded_once_for_many_tracks_and_values_match_in_process(tmp_path, conf):
    sr, n_tracks = 22050, 4
    t = np.arange(int(2.0 * sr)) / sr
    bass = (0.4 * np.sin(2 * np.pi * 55.0 * t) * (t % 0.5 < 0.4)).astype(np.float32)
    sf.write(tmp_path / "bass.flac", np.stack([bass, bass], axis=1), sr)
    settings = CONFIG.get("bass_transcription", {})  # typed section: config.yaml omits it, BassParams defaults it

    def bass_job(name):
        return request(tmp_path, name, entry="mirflow.runner:run_family_job", rule="bass_transcription",
                       inputs={"bass": str(tmp_path / "bass.flac")},
                       outputs=[["json", str(tmp_path / f"{name}.json")], ["midi", str(tmp_path / f"{name}.mid")]],
                       params={"family": "bass_transcription", "settings": settings})

    for i in range(n_tracks):
        assert run_in_worker(bass_job(f"t{i}"), conf) == 0
    log = Path(lane_paths(conf["dir"], "cpu")["log"]).read_text()
    loads = [line for line in log.splitlines() if "model-load kind=basic_pitch" in line]
    assert len(loads) == 1, loads
    assert f"pid={worker_pid(conf, 'cpu')}" in loads[0]  # loaded in the long-lived parent, not in a job
    assert log.count("step=bass_transcription exit=0") == n_tracks
    assert execute(bass_job("inproc")) == 0
    reference = json.loads((tmp_path / "inproc.json").read_text())
    assert reference["bass_note_count"] >= 1
    for i in range(n_tracks):
        values = json.loads((tmp_path / f"t{i}.json").read_text())
        assert {k: v for k, v in values.items() if k != "_meta"} == {
            k: v for k, v in reference.items() if k != "_meta"}
        assert (tmp_path / f"t{i}.mid").read_bytes() == (tmp_path / "inproc.mid").read_bytes()


@pytest.mark.parametrize("lane", ["cpu", "gpu"])
def test_a_crashing_or_hanging_job_fails_alone_and_the_worker_serves_the_next(tmp_path, conf, lane, capsys):
    assert run_in_worker(crashy(tmp_path, "first", "ok", lane=lane), conf) == 0
    server = worker_pid(conf, lane)
    job_pid, job_parent = map(int, (tmp_path / "first.out").read_text().split())
    assert job_parent == server and job_pid != server  # the job ran in the worker's child
    capsys.readouterr()
    expected = {"abort": "killed by SIGABRT", "sigkill": "out-of-memory killer", "segfault": "killed by SIGSEGV",
                "sleep": "ran longer than its timeout of 1.0 s", "fail": "ValueError: a bad value"}
    for behaviour, reason in expected.items():
        status = run_in_worker(crashy(tmp_path, behaviour, behaviour, lane=lane,
                                      timeout_s=1.0 if behaviour == "sleep" else None), conf)
        err = capsys.readouterr().err
        assert status == 1, behaviour
        assert f"track 'Artist/{behaviour}', step 'crashy' failed" in err and reason in err, (behaviour, err)
        log = (tmp_path / "logs" / f"{behaviour}.log").read_text()
        assert "MIRFLOW-FAILED" in log and reason.split(":")[-1].strip() in log, (behaviour, log)
        assert not (tmp_path / f"{behaviour}.out").exists()
    assert run_in_worker(crashy(tmp_path, "after", "ok", lane=lane), conf) == 0
    assert worker_pid(conf, lane) == server  # the worker survived every failure
    after_pid, after_parent = map(int, (tmp_path / "after.out").read_text().split())
    assert after_parent == server
    if lane == "gpu":  # the persistent executor was killed, then restarted transparently
        assert after_pid != job_pid


def test_concurrent_first_jobs_start_exactly_one_worker(tmp_path, conf):
    statuses = {}

    def run(i):
        statuses[i] = run_in_worker(crashy(tmp_path, f"c{i}", "ok"), conf)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert statuses == dict.fromkeys(range(6), 0)
    log = Path(lane_paths(conf["dir"], "cpu")["log"]).read_text()
    assert log.count("listening on") == 1
    parents = {int((tmp_path / f"c{i}.out").read_text().split()[1]) for i in range(6)}
    assert parents == {worker_pid(conf, "cpu")}


def test_worker_exits_when_its_snakemake_process_dies(tmp_path, conf):
    snakemake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        assert run_in_worker(crashy(tmp_path, "owned", "ok", owner_pid=snakemake.pid), conf) == 0
        server = worker_pid(conf, "cpu")
        time.sleep(1.5)
        assert _alive(server)  # still there while its Snakemake runs
    finally:
        snakemake.kill()
        snakemake.wait()
    assert wait_gone(server, 5.0)
    paths = lane_paths(conf["dir"], "cpu")
    assert not os.path.exists(paths["sock"]) and not os.path.exists(paths["pid"])
    assert "every Snakemake process that sent jobs has exited" in Path(paths["log"]).read_text()


def test_an_idle_worker_exits(tmp_path, conf):
    conf["idle_exit_s"] = 1
    assert run_in_worker(crashy(tmp_path, "idle", "ok"), conf) == 0
    assert wait_gone(worker_pid(conf, "cpu"), 5.0)


#: Keys of _provenance that are wall-clock timings (they differ between any two runs).
TIMINGS = {"wall_time_s", "decoding_s", "network_s", "preprocessing_s", "load_s", "model_load_s", "inference_s",
           "separation_s"}


def comparable(value, folder: str):
    """A JSON value without timings and with the run's folder written as <run>."""
    if isinstance(value, dict):  # keys too: _provenance.inputs is keyed by each input file's path
        return {k.replace(folder, "<run>"): comparable(v, folder) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [comparable(v, folder) for v in value]
    return value.replace(folder, "<run>") if isinstance(value, str) else value


@pytest.mark.slow
def test_workflow_values_are_identical_with_and_without_workers(tmp_path):
    """The demo-like tiny corpus (a track with provided stems, a loose file; crops on) run with workers and
    with `workers: false`: every key of every track and crop .INFO is equal, `_provenance` too but its
    timings (and the run's folder in input paths)."""
    from test_workflow import BAND, LOOSE, SNAKEFILE, SR, _tone_mix

    music = tmp_path / "music"  # written once: an Ogg file's bytes differ between two encodings
    (music / BAND).mkdir(parents=True)
    (music / "Album").mkdir()
    stems = _tone_mix()
    for name, data in stems.items():
        sf.write(music / BAND / f"{name}.flac", data, SR)
    sf.write(music / BAND / "full_mix.flac", sum(stems.values()), SR)
    sf.write(music / f"{LOOSE}.ogg", sum(_tone_mix(seed=1).values()), SR)
    runs = {}
    for mode in ("workers", "in_process"):
        wd = tmp_path / mode
        shutil.copytree(music, wd / "music")
        # captions_feature is left out: llama.cpp's output is checked by its own tests.
        extra = {"crops": {**CONFIG["crops"], "length_samples": 88200}, "families": {"captions_feature": False},
                 "workers": mode == "workers"}
        (wd / "extra.yaml").write_text(yaml.safe_dump(extra))
        shutil.copytree(REPO / "config", wd / "config")
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--cores", "2",
                               "--configfile", "config/config.yaml", "extra.yaml",
                               "--config", "input_dir=music", "results_dir=results"],
                              cwd=wd, capture_output=True, text=True, timeout=900,
                              # A private numba cache: another process rewriting the shared one (librosa's, in
                              # site-packages) must not crash either run; both start from the same empty cache.
                              env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")})
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (wd / "results" / ".mirflow").exists() == (mode == "workers")
        runs[mode] = {str(p.relative_to(wd)): comparable(json.loads(p.read_text(encoding="utf-8")), str(wd))
                      for p in sorted((wd / "results").rglob("*.INFO"))}
    assert len(runs["workers"]) == 6  # 2 tracks + 4 crops
    assert runs["workers"].keys() == runs["in_process"].keys()
    for path, info in runs["workers"].items():
        other = runs["in_process"][path]
        assert info.keys() == other.keys(), path
        for key in info:
            assert info[key] == other[key], (path, key)
