"""Fuzz the audio loader and the grid/.INFO readers with random, truncated and damaged bytes.

Every case must end in a decoded signal or a mirflow error (a MirflowError with a message), never another
exception or a dead interpreter. The audio cases run in a child process (the decoders are C libraries): a
segfault there is reported as the case that caused it instead of killing the test run.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import REPO
from mirflow.audio import AUDIO_EXTENSIONS
from mirflow.errors import InputAudioError, MirflowError, ResultFileError
from mirflow.features.rhythm import format_times, read_times
from mirflow.jsonio import dumps_strict, read_info
from mirflow.probe import probe_file

CHILD = textwrap.dedent("""
    import json, sys
    from mirflow.audio import load_audio
    from mirflow.errors import MirflowError
    for i, path in enumerate(json.load(open(sys.argv[1]))):
        print("START", i, flush=True)
        try:
            signal = load_audio(path)
            assert signal.frames > 0 and signal.sample_rate > 0
            print("RESULT", i, "decoded", flush=True)
        except MirflowError as err:
            print("RESULT", i, "mirflow" if str(err).strip() else "EMPTY-MESSAGE", flush=True)
        except BaseException as err:
            print("RESULT", i, "OTHER", type(err).__name__, str(err)[:200].replace("\\n", " "), flush=True)
""")


def _template(fmt: str) -> bytes:
    t = np.arange(8000) / 8000
    data = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1).astype(np.float32) * 0.3
    buf = io.BytesIO()
    sf.write(buf, data, 8000, format=fmt)
    return buf.getvalue()


TEMPLATES = {ext: _template(fmt) for ext, fmt in (("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG"),
                                                   ("aiff", "AIFF"), ("mp3", "MP3"))}


@st.composite
def damaged_audio(draw):
    ext = draw(st.sampled_from(AUDIO_EXTENSIONS))
    kind = draw(st.sampled_from(["random", "truncated", "flipped"] if ext in TEMPLATES else ["random"]))
    if kind == "random":
        return ext, draw(st.binary(min_size=1, max_size=4096))
    data = bytearray(TEMPLATES[ext])
    if kind == "truncated":
        return ext, bytes(data[: draw(st.integers(1, len(data) - 1))])
    for pos in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=16)):
        data[pos] = draw(st.integers(0, 255))
    return ext, bytes(data)


@pytest.mark.slow
@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(cases=st.lists(damaged_audio(), min_size=8, max_size=16))
def test_audio_loader_never_crashes(cases, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    paths = []
    for i, (ext, data) in enumerate(cases):
        paths.append(str(folder / f"case{i}.{ext}"))
        Path(paths[-1]).write_bytes(data)
    (folder / "cases.json").write_text(json.dumps(paths))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(folder / "cases.json")], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO / "scripts")})
    lines = [line.split(" ", 3) for line in proc.stdout.splitlines() if line.startswith(("START", "RESULT"))]
    started = [int(parts[1]) for parts in lines if parts[0] == "START"]
    results = {int(parts[1]): parts[2:] for parts in lines if parts[0] == "RESULT"}
    if proc.returncode != 0:
        # A C decoder killed the interpreter: the case is reported, and the probe job (which decodes every
        # input in a child process before any family runs) must turn it into a mirflow error.
        crashed = started[-1]
        assert proc.returncode < 0 and crashed not in results, proc.stderr[-2000:]
        with pytest.raises(InputAudioError, match="the audio decoder crashed"):
            probe_file(paths[crashed])
        return
    assert sorted(results) == list(range(len(cases)))
    bad = {i: r for i, r in results.items() if r[0] not in ("decoded", "mirflow")}
    assert not bad, f"cases that did not end in a mirflow error: {bad}"


def test_undecodable_bytes_give_a_mirflow_error_naming_the_file(tmp_path):
    from mirflow.audio import load_audio
    from mirflow.errors import InputAudioError

    path = tmp_path / "noise.flac"
    path.write_bytes(b"fLaC" + bytes(range(256)) * 4)
    with pytest.raises(InputAudioError) as info:
        load_audio(path)
    assert str(path) in str(info.value) and "no decoder could read it" in str(info.value)


GRID = format_times(np.array([0.5, 1.0, 1.5, 2.25]))
INFO = dumps_strict({"lufs": -14.2, "bpm": 120.0, "_provenance": {"families": {"loudness": {"version": 1}}}})


@settings(max_examples=200, deadline=None, derandomize=True)
@given(data=st.one_of(st.binary(max_size=512),
                      st.integers(0, len(GRID)).map(lambda n: GRID[:n].encode()),
                      st.text(max_size=200).map(str.encode),
                      st.lists(st.sampled_from(["1.5", "-1", "nan", "inf", "1e999", "", " ", "0x10", "2", "1"]),
                               max_size=8).map(lambda xs: "\n".join(xs).encode())))
def test_grid_reader_gives_times_or_a_mirflow_error(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("grid") / "x.BEATS_GRID"
    path.write_bytes(data)
    try:
        times = read_times(path)
    except MirflowError as err:
        assert isinstance(err, ResultFileError) and str(path) in str(err) and err.fix
        return
    assert times.dtype == np.float64 and np.all(np.isfinite(times)) and np.all(np.diff(times) >= 0)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(data=st.one_of(st.binary(max_size=512),
                      st.integers(0, len(INFO)).map(lambda n: INFO[:n].encode()),
                      st.integers(1, 200_000).map(lambda n: b"[" * n),
                      st.sampled_from([b'{"a": NaN}', b'{"a": 1e999}', b"[]", b"3", b"\xff\xfe{}",
                                       b'{"a": -Infinity}'])))
def test_info_reader_gives_an_object_or_a_mirflow_error(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("info") / "x.INFO"
    path.write_bytes(data)
    try:
        info = read_info(path)
    except MirflowError as err:
        assert isinstance(err, ResultFileError) and str(path) in str(err) and err.fix
        return
    assert isinstance(info, dict)
    json.dumps(info, allow_nan=False)  # strict: nothing non-finite got through


def test_probe_reports_a_decoder_crash_as_a_mirflow_error(tmp_path, monkeypatch):
    """A decoder that kills its process ends in a mirflow error naming the file and the signal: simulated by a
    decode that sends SIGSEGV to the process running it, which is the forked child, not this test."""
    import os
    import signal

    import mirflow.probe

    monkeypatch.setattr(mirflow.probe, "_facts", lambda path: os.kill(os.getpid(), signal.SIGSEGV))
    with pytest.raises(InputAudioError, match=r"x.ogg.*the audio decoder crashed \(SIGSEGV\) while reading it"):
        probe_file(str(tmp_path / "x.ogg"))


def test_probe_without_fork_decodes_in_a_fresh_interpreter_with_the_same_outcomes(tmp_path, monkeypatch):
    import signal
    import subprocess as sp

    from mirflow.probe import _decode_in_python

    good = tmp_path / "good.flac"
    good.write_bytes(TEMPLATES["flac"])
    status, lines = _decode_in_python([str(good)], 60)
    assert status == 0 and '"frames": 8000' in lines[0]
    real_run = sp.run
    monkeypatch.setattr(sp, "run", lambda cmd, **kw: real_run(
        [sys.executable, "-c", f"import os; os.kill(os.getpid(), {int(signal.SIGSEGV)})"], **kw))
    assert _decode_in_python([str(good)], 60)[0] == -signal.SIGSEGV


def test_a_decode_past_its_time_limit_is_stopped_and_reported(tmp_path, monkeypatch):
    import time

    import mirflow.probe
    from mirflow.probe import probe_inputs

    monkeypatch.setattr(mirflow.probe, "_facts", lambda path: time.sleep(30))
    started = time.monotonic()
    with pytest.raises(InputAudioError, match="decoding took longer than 1 s"):
        probe_inputs({"audio": str(tmp_path / "slow.flac")}, timeout_s=1.0)
    assert time.monotonic() - started < 10


def test_probe_facts_of_a_good_file_and_reason_of_a_bad_one(tmp_path):
    good = tmp_path / "good.flac"
    good.write_bytes(TEMPLATES["flac"])
    facts = probe_file(str(good))
    assert (facts["sample_rate"], facts["channels"], facts["frames"]) == (8000, 2, 8000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVE")
    with pytest.raises(InputAudioError, match="no decoder could read it"):
        probe_file(str(bad))


def test_probe_names_the_broken_input_among_several(tmp_path):
    from mirflow.probe import probe_inputs

    good = tmp_path / "full_mix.flac"
    good.write_bytes(TEMPLATES["flac"])
    empty = tmp_path / "bass.wav"
    empty.write_bytes(b"")
    facts = probe_inputs({"audio": str(good), "drums": str(good)})
    assert set(facts) == {"audio", "drums"} and facts["drums"]["duration_s"] == 1.0
    with pytest.raises(InputAudioError) as info:
        probe_inputs({"audio": str(good), "bass": str(empty), "drums": str(good)})
    assert info.value.path == str(empty) and info.value.reason == "the file is empty (0 bytes)"
