"""Strict atomic JSON and the shared audio loader."""
import math
import os

import numpy as np
import pytest
import soundfile as sf

from conftest import shared_path
from mirflow.audio import load_audio
from mirflow.errors import InputAudioError
from mirflow.jsonio import NonFiniteValueError, read_json, write_json_atomic


def test_nan_and_inf_are_refused(tmp_path):
    for bad in (math.nan, math.inf, np.float32("nan")):
        with pytest.raises(NonFiniteValueError):
            write_json_atomic(tmp_path / "x.json", {"a": {"b": [1.0, bad]}})
    assert not list(tmp_path.iterdir()), "a failed write must leave no file behind"


def test_atomic_write_round_trip_numpy_types(tmp_path):
    path = tmp_path / "sub" / "x.json"
    write_json_atomic(path, {"i": np.int64(3), "f": np.float32(0.5), "arr": np.arange(3), "s": "Café"})
    assert read_json(path) == {"i": 3, "f": 0.5, "arr": [0, 1, 2], "s": "Café"}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]
    (tmp_path / "nan.json").write_text('{"a": NaN}')
    with pytest.raises(ValueError):
        read_json(tmp_path / "nan.json")


@pytest.mark.parametrize("fmt, subtype, ext", [("WAV", "PCM_16", "wav"), ("FLAC", "PCM_24", "flac"),
                                                ("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3"),
                                                ("OGG", "OPUS", "opus"), ("AIFF", "PCM_16", "aiff")])
def test_loader_decodes_formats_at_native_rate_and_layout(tmp_path, fmt, subtype, ext):
    sr = 48000 if ext == "opus" else 44100
    t = np.arange(sr) / sr
    data = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 660 * t)], axis=1)
    path = tmp_path / f"x.{ext}"
    sf.write(path, data, sr, format=fmt, subtype=subtype)
    sig = load_audio(path)
    assert sig.sample_rate == sr and sig.channels == 2 and sig.samples.dtype == np.float32
    assert abs(sig.duration_s - 1.0) < 0.08  # lossy codecs pad a few ms
    # level survives decoding (no normalisation): left channel RMS of a 0.5 sine
    assert np.sqrt(np.mean(sig.samples[0] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_loader_decodes_aac_in_mp4_without_system_ffmpeg():
    path = shared_path("audio", "gt", "musdb18_7s_sample", "Music Delta - 80s Rock.stem.mp4")
    sig = load_audio(path)
    assert sig.sample_rate == 44100 and sig.channels == 2 and 6.5 < sig.duration_s < 7.5
    assert sig.decoder == "essentia"


def test_loader_errors_name_the_file_and_the_fix(tmp_path):
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    with pytest.raises(InputAudioError, match="empty.flac.*empty"):
        load_audio(empty)
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(os.urandom(2048))
    with pytest.raises(InputAudioError, match="corrupt.mp3") as err:
        load_audio(corrupt)
    assert "Fix:" in str(err.value)
    with pytest.raises(InputAudioError, match="does not exist"):
        load_audio(tmp_path / "missing.wav")
