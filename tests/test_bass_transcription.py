"""Bass transcription with Basic Pitch's ONNX model."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import as_signal

pytest.importorskip("onnxruntime")
pytest.importorskip("basic_pitch")

from mirflow import demo
from mirflow.errors import ConfigError, MirflowError
from mirflow.params import from_config
from mirflow.transcription import bass
from mirflow.transcription.midi import MidiNote


@pytest.fixture(scope="module")
def model():
    return bass.load_model(bass.bundled_model_path(), device="cpu")


@pytest.fixture(scope="module")
def demo_songs():
    return [demo.render_song(spec) for spec in (demo.DEMO_SONGS[0], demo.DEMO_SONGS[1])]


def match_notes(truth: list[dict], notes: list[MidiNote], window: float = 0.05) -> int:
    """Truth notes matched one-to-one by an estimated note of the same pitch starting within ``window``."""
    used, matched = set(), 0
    for t in truth:
        candidates = [i for i, n in enumerate(notes)
                      if i not in used and n.pitch == t["midi"] and abs(n.start_s - t["onset"]) <= window]
        if candidates:
            used.add(min(candidates, key=lambda i: abs(notes[i].start_s - t["onset"])))
            matched += 1
    return matched


def test_bundled_model_and_checksum(model, tmp_path):
    assert model.path.endswith("nmp.onnx")
    assert len(model.sha256) == 64
    assert "CPUExecutionProvider" in model.providers
    with pytest.raises(MirflowError, match="SHA-256"):
        bass.load_model(model.path, sha256="0" * 64)
    with pytest.raises(MirflowError, match="does not exist"):
        bass.load_model(tmp_path / "nmp.onnx")


def test_basic_pitch_points_at_onnx_without_tensorflow():
    import importlib.util

    if importlib.util.find_spec("tensorflow") is not None:
        pytest.skip("TensorFlow is installed: basic_pitch then prefers its SavedModel")
    with bass._quiet_basic_pitch_import():
        import basic_pitch
    assert str(basic_pitch.ICASSP_2022_MODEL_PATH).endswith("nmp.onnx")
    assert str(basic_pitch.ICASSP_2022_MODEL_PATH) == bass.bundled_model_path()


def test_windowing_matches_basic_pitch_inference(model, tmp_path):
    """Our batched windowing gives the same posteriors as basic_pitch.inference.run_inference."""
    import soundfile as sf

    with bass._quiet_basic_pitch_import():
        from basic_pitch.inference import Model, run_inference
    rng = np.random.default_rng(0)
    t = np.arange(int(4.3 * 22050)) / 22050
    audio = (0.3 * np.sin(2 * np.pi * 55 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
             + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    sf.write(tmp_path / "x.wav", audio, 22050, subtype="FLOAT")
    reference = run_inference(tmp_path / "x.wav", Model(model.path))
    ours = bass.model_posteriors(model, audio, batch_windows=2)
    for key in ("note", "onset", "contour"):
        assert ours[key].shape == reference[key].shape
        np.testing.assert_allclose(ours[key], reference[key], atol=2e-5)
    assert ours["note"].shape[0] == int(np.floor(audio.size * 86 / 22050))


def test_frame_times_follow_the_windowing():
    times = bass.frame_times(300)
    assert times[0] == 0.0
    assert times[141] == pytest.approx(141 * 256 / 22050)
    # Window 1 starts 36164 samples later; its first kept frame is centred on 142*256 - 188 samples.
    assert times[142] == pytest.approx((142 * 256 - 188) / 22050)


def test_demo_bass_lines_pitch_and_onsets(model, demo_songs):
    for song in demo_songs:
        signal = as_signal(song.stems["bass"], song.sample_rate)
        result = bass.transcribe(model, signal)
        truth = song.truth["bass_notes"]
        matched = match_notes(truth, result.notes)
        # Measured: every truth note found (22/22, 15/15) with 1 extra note per song.
        assert matched / len(truth) >= 0.9, song.truth["song_id"]
        assert matched / len(result.notes) >= 0.85, song.truth["song_id"]
        assert all(28 <= n.pitch <= 60 for n in result.notes)
        assert result.meta["note_count"] == len(result.notes)
        assert result.meta["model_sha256"] == model.sha256


def test_pitch_range_limits_the_notes(model, demo_songs):
    song = demo_songs[0]
    signal = as_signal(song.stems["bass"], song.sample_rate)
    notes = bass.transcribe(model, signal, bass.BassParams(max_midi=36)).notes
    assert notes and all(n.pitch <= 36 for n in notes)
    low_truth = [t for t in song.truth["bass_notes"] if t["midi"] <= 36]
    assert match_notes(low_truth, notes) >= 0.9 * len(low_truth)


def test_harmonic_ghosts_are_suppressed():
    notes = [MidiNote(1.0, 2.0, 33, 100),   # A1
             MidiNote(1.01, 1.3, 45, 60),   # octave, quieter: ghost
             MidiNote(1.02, 1.3, 52, 50),   # 3rd harmonic (+19), quieter: ghost
             MidiNote(1.5, 1.8, 57, 110),   # louder than A1: kept
             MidiNote(2.5, 3.0, 45, 60)]    # nothing lower sounding: kept
    kept = bass.suppress_harmonic_ghosts(notes)
    assert [(n.start_s, n.pitch) for n in kept] == [(1.0, 33), (1.5, 57), (2.5, 45)]


def test_bass_midi_program_channel_and_times(model, demo_songs, tmp_path):
    import mido
    import pretty_midi

    song = demo_songs[1]
    result = bass.transcribe(model, as_signal(song.stems["bass"], song.sample_rate))
    info = bass.write_bass_midi(tmp_path / "bass_basicpitch.mid", result)
    assert info["note_count"] == len(result.notes)
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "bass_basicpitch.mid"))
    assert len(midi.instruments) == 1
    inst = midi.instruments[0]
    assert inst.program == bass.BASS_PROGRAM and not inst.is_drum
    read = sorted((n.pitch, n.start) for n in inst.notes)
    expected = sorted((n.pitch, n.start_s) for n in result.notes)
    assert [p for p, _ in read] == [p for p, _ in expected]
    np.testing.assert_allclose([s for _, s in read], [s for _, s in expected], atol=1.1e-3)
    assert {m.channel for m in mido.MidiFile(tmp_path / "bass_basicpitch.mid") if hasattr(m, "channel")} == {0}


def test_silent_bass_gives_no_notes(model):
    result = bass.transcribe(model, as_signal(np.zeros((2, 44100)), 44100))
    assert result.notes == [] and result.meta["input_silent"] and result.meta["note_count"] == 0
    with pytest.raises(ConfigError, match="min_midi"):
        bass.BassParams(min_midi=50, max_midi=40)
    with pytest.raises(ConfigError, match=r"bass_transcription\.max_midi"):  # outside the model's 21..108
        from_config(bass.BassParams, {"max_midi": 120}, where="bass_transcription")
