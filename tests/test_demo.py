"""Tests of the synthetic demo corpus: its ground truth must be exact and audible."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mirflow import demo
from mirflow.audio import load_audio
from mirflow.jsonio import read_json

ALL_SPECS = demo.DEMO_SONGS + tuple(loose.song for loose in demo.LOOSE_FILES)
SCRIPTS_DIR = Path(demo.__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """The full corpus, generated once; yields (out_dir, returned paths, seconds taken)."""
    out_dir = tmp_path_factory.mktemp("demo") / "corpus"
    start = time.perf_counter()
    paths = demo.generate_demo_corpus(out_dir)
    elapsed = time.perf_counter() - start
    print(f"\ndemo corpus generated in {elapsed:.2f} s")
    return out_dir, paths, elapsed


@pytest.fixture(scope="session")
def rendered():
    """Every spec rendered once (in memory), keyed by song_id."""
    return {spec.song_id: demo.render_song(spec) for spec in ALL_SPECS}


def _all_truth_times(truth: dict) -> list[float]:
    times = list(truth["beats"]) + list(truth["downbeats"])
    for hits in truth["drum_hits"].values():
        times += hits
    for note in truth["bass_notes"] + truth["vocal_notes"]:
        times += [note["onset"], note["offset"]]
    for chord in truth["chords"]:
        times += [chord["start"], chord["end"]]
    return times


# ---------------------------------------------------------------- the specs


def test_demo_songs_vary_meter_tempo_key_and_names():
    songs = demo.DEMO_SONGS
    assert len(songs) == 4
    assert {s.beats_per_bar for s in songs} == {3, 4}
    assert len({s.tempo_bpm for s in songs}) == 4
    assert len({(s.tonic, s.mode) for s in songs}) == 4 and {s.mode for s in songs} == {"major", "minor"}
    assert [s.silent_vocals for s in songs].count(True) == 1
    awkward = [s.song_id for s in songs if " " in s.song_id and "," in s.song_id and not s.song_id.isascii()]
    assert awkward, "one song folder name must have spaces, a comma and non-ASCII letters"
    assert all(unicodedata.is_normalized("NFC", s.song_id) for s in ALL_SPECS)
    assert all(10.0 <= s.duration_s <= 30.0 for s in songs)
    assert sum(s.duration_s for s in songs) < 90.0
    assert [f.file_name for f in demo.LOOSE_FILES] == ["loop 120.ogg", "Ünïcode 'quote' 90.mp3"]
    assert all(Path(f.file_name).stem == f.song.song_id for f in demo.LOOSE_FILES)


def test_song_spec_rejects_impossible_songs():
    with pytest.raises(ValueError, match="mode"):
        demo.SongSpec("x", 120, 4, "C", "dorian", 10.0, ("C",), seed=1)
    with pytest.raises(ValueError, match="beats_per_bar"):
        demo.SongSpec("x", 120, 5, "C", "major", 10.0, ("C",), seed=1)
    with pytest.raises(ValueError, match="no whole bar"):
        demo.SongSpec("x", 60, 4, "C", "major", 4.0, ("C",), seed=1)  # 0.5 + 4 s bar + tail > 4 s
    with pytest.raises(ValueError, match="unknown note name"):
        demo.SongSpec("x", 120, 4, "H", "major", 10.0, ("C",), seed=1)


def test_chord_labels_and_pitch_classes():
    assert demo.chord_label("Am") == "A:min"
    assert demo.chord_label("Eb") == "Eb:maj"
    assert demo.chord_label("F#m") == "F#:min"
    assert [demo.pitch_class(n) for n in ("C", "Eb", "F#", "A", "B")] == [0, 3, 6, 9, 11]
    assert demo.midi_to_hz(69) == 440.0
    assert demo.midi_to_hz(57) == pytest.approx(220.0)


# ---------------------------------------------------------------- truth consistency


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.song_id)
def test_truth_grid_is_exact_and_inside_the_audio(spec, rendered):
    song = rendered[spec.song_id]
    truth = song.truth
    beat_s = 60.0 / spec.tempo_bpm
    beats = np.array(truth["beats"])
    assert truth["tempo_bpm"] == spec.tempo_bpm
    assert truth["beats_per_bar"] == spec.beats_per_bar
    assert truth["sample_rate"] == 44100
    assert truth["duration_s"] == song.mix.shape[1] / 44100 == pytest.approx(spec.duration_s, abs=1e-4)
    assert beats[0] == pytest.approx(0.5, abs=1e-12)
    assert len(beats) == spec.n_bars * spec.beats_per_bar
    np.testing.assert_allclose(np.diff(beats), beat_s, rtol=0, atol=1e-9)
    assert truth["downbeats"] == truth["beats"][:: spec.beats_per_bar]
    # the song ends with a tail of decays only, no event after the last bar
    last_bar_end = beats[-1] + beat_s
    assert truth["duration_s"] - last_bar_end >= demo.MIN_TAIL_S - 1e-9
    times = np.array(_all_truth_times(truth))
    assert times.min() >= 0.5 - 1e-9 and times.max() <= truth["duration_s"]

    # drums: kick on the downbeat (and beat 3 in 4/4), snare on backbeats, hi-hat on every eighth
    hits = truth["drum_hits"]
    downbeats = set(np.round(truth["downbeats"], 9))
    assert downbeats <= set(np.round(hits["kick"], 9))
    kick_beats = {0, 2} if spec.beats_per_bar == 4 else {0}
    beat_index = np.round((np.array(hits["kick"]) - 0.5) / beat_s, 6)
    assert set(beat_index % spec.beats_per_bar) == kick_beats
    snare_index = np.round((np.array(hits["snare"]) - 0.5) / beat_s, 6)
    assert set(snare_index % spec.beats_per_bar) == ({1, 3} if spec.beats_per_bar == 4 else {1, 2})
    np.testing.assert_allclose(np.diff(hits["hihat"]), beat_s / 2, atol=1e-9)
    assert len(hits["hihat"]) == 2 * len(beats)

    # chords: one per bar, contiguous, following the progression, ending on the tonic chord
    chords = truth["chords"]
    assert [c["start"] for c in chords] == truth["downbeats"]
    assert all(a["end"] == b["start"] for a, b in zip(chords, chords[1:]))
    expected = [demo.chord_label(spec.progression[i % len(spec.progression)]) for i in range(spec.n_bars)]
    assert [c["label"] for c in chords] == expected
    tonic_chord = f"{spec.tonic}:{'min' if spec.mode == 'minor' else 'maj'}"
    assert chords[0]["label"] == chords[-1]["label"] == tonic_chord
    assert truth["key"] == {"tonic": spec.tonic, "mode": spec.mode, "pitch_class": demo.pitch_class(spec.tonic),
                            "label": f"{spec.tonic} {spec.mode}"}

    # bass: the chord root on every downbeat, in range, notes never overlap
    bass = truth["bass_notes"]
    assert all(28 <= n["midi"] <= 55 and n["offset"] > n["onset"] for n in bass)
    assert all(a["offset"] < b["onset"] for a, b in zip(bass, bass[1:]))
    on_downbeat = {round(n["onset"], 9): n["midi"] for n in bass}
    for chord in chords:
        root = chord["label"].split(":")[0]
        assert on_downbeat[round(chord["start"], 9)] % 12 == demo.pitch_class(root)

    # vocals: chord tones of the bar's chord in MIDI 60-74, with rests between some notes
    vocals = truth["vocal_notes"]
    if spec.silent_vocals:
        assert vocals == []
    else:
        assert vocals and all(60 <= n["midi"] <= 74 for n in vocals)
        assert all(a["offset"] < b["onset"] for a, b in zip(vocals, vocals[1:]))
        for note in vocals:
            bar = int((note["onset"] - 0.5 + 1e-9) // (beat_s * spec.beats_per_bar))
            root, quality = chords[bar]["label"].split(":")
            triad = {(demo.pitch_class(root) + s) % 12 for s in ((0, 4, 7) if quality == "maj" else (0, 3, 7))}
            assert note["midi"] % 12 in triad
        rests = [b["onset"] - a["offset"] for a, b in zip(vocals, vocals[1:])]
        assert max(rests) >= beat_s / 2
        assert vocals[-1]["midi"] % 12 == demo.pitch_class(spec.tonic)


# ---------------------------------------------------------------- levels, silence, determinism


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.song_id)
def test_mix_is_the_sum_of_stems_at_minus_1_dbfs(spec, rendered):
    song = rendered[spec.song_id]
    assert set(song.stems) == {"drums", "bass", "other", "vocals"}
    for stem in song.stems.values():
        assert stem.dtype == np.float32 and stem.shape == song.mix.shape and stem.shape[0] == 2
    total = ((song.stems["drums"] + song.stems["bass"]) + song.stems["other"]) + song.stems["vocals"]
    assert np.array_equal(song.mix, total)
    np.testing.assert_allclose(song.mix, sum(s.astype(np.float64) for s in song.stems.values()), atol=1e-6)
    assert np.max(np.abs(song.mix)) == pytest.approx(demo.TARGET_PEAK, abs=1e-6)
    # one common gain: the melodic stems keep their lower level instead of each peaking at -1 dBFS
    for name in ("bass", "other", "vocals"):
        assert np.max(np.abs(song.stems[name])) < 0.5
    assert np.all(np.isfinite(song.mix))


def test_silent_vocals_are_exact_digital_silence(rendered, corpus):
    out_dir, _, _ = corpus
    for spec in demo.DEMO_SONGS:
        vocals = rendered[spec.song_id].stems["vocals"]
        decoded = load_audio(out_dir / spec.song_id / "vocals.flac")
        if spec.silent_vocals:
            assert not np.any(vocals)
            assert decoded.is_digital_silence()
        else:
            assert np.max(np.abs(vocals)) > 0.05
            assert not decoded.is_digital_silence()


def test_rendering_is_deterministic_and_seeded():
    spec = demo.SongSpec("det", 120.0, 4, "C", "major", 5.0, ("C", "G"), seed=11)
    first, second = demo.render_song(spec), demo.render_song(spec)
    for name in demo.STEM_NAMES:
        assert np.array_equal(first.stems[name], second.stems[name])
    assert first.truth == second.truth
    reseeded = demo.render_song(demo.SongSpec("det", 120.0, 4, "C", "major", 5.0, ("C", "G"), seed=12))
    assert not np.array_equal(first.stems["drums"], reseeded.stems["drums"])  # the seed drives the noise


def test_other_sample_rates_render_the_same_truth():
    spec = demo.SongSpec("sr", 120.0, 4, "C", "major", 5.0, ("C", "G"), seed=3)
    at_48k = demo.render_song(spec, sample_rate=48000)
    assert at_48k.mix.shape == (2, 240000)
    assert at_48k.truth["beats"] == demo.render_song(spec).truth["beats"]


# ---------------------------------------------------------------- files


def test_corpus_files_decode_with_expected_format(corpus, rendered):
    out_dir, paths, elapsed = corpus
    assert paths == demo.corpus_track_paths(out_dir)
    assert (out_dir / ".complete").read_text(encoding="utf-8").strip() == demo.GENERATOR_VERSION
    assert elapsed < 30.0
    for spec in demo.DEMO_SONGS:
        song_dir = out_dir / spec.song_id
        song = rendered[spec.song_id]
        assert read_json(song_dir / "ground_truth.json") == song.truth
        assert demo.load_truth(song_dir) == song.truth
        for name, reference in [("full_mix", song.mix)] + list(song.stems.items()):
            path = song_dir / f"{name}.flac"
            info = sf.info(str(path))
            assert (info.format, info.subtype) == ("FLAC", "PCM_16")
            audio = load_audio(path)
            assert audio.sample_rate == 44100 and audio.channels == 2
            assert audio.frames == round(spec.duration_s * 44100)
            # PCM_16 rounding only: at most half an LSB away from the rendered float samples
            assert np.max(np.abs(audio.samples - reference)) <= 0.5 / 32768 + 1e-9
    for loose in demo.LOOSE_FILES:
        path = out_dir / "loose" / loose.file_name
        assert path.is_file()
        truth = demo.load_truth(path)
        assert demo.truth_path_for(path).name == Path(loose.file_name).stem + ".truth.json"
        assert truth["song_id"] == loose.song.song_id
        assert sf.info(str(path)).format == loose.audio_format
        audio = load_audio(path)
        assert audio.sample_rate == 44100 and audio.channels == 2
        assert audio.duration_s == pytest.approx(truth["duration_s"], abs=0.005)
        # lossy, but time-aligned with the render (no encoder delay left) and close to it
        reference = rendered[loose.song.song_id].mix.mean(axis=0)
        decoded = audio.mono()[: reference.size]
        correlation = np.corrcoef(reference[: decoded.size], decoded)[0, 1]
        assert correlation > 0.97


def test_regenerating_gives_identical_decoded_samples(corpus, tmp_path):
    out_dir, _, _ = corpus
    again = tmp_path / "again"
    demo.generate_demo_corpus(again, force=True)
    for first in demo.expected_corpus_files(out_dir):
        second = again / first.relative_to(out_dir)
        if first.suffix == ".json":
            assert read_json(first) == read_json(second)
        else:
            a, b = load_audio(first), load_audio(second)
            assert a.sample_rate == b.sample_rate and np.array_equal(a.samples, b.samples), first.name


def test_generation_is_idempotent_and_versioned(tmp_path, monkeypatch):
    tiny = demo.SongSpec("tiny, é", 120.0, 4, "C", "major", 3.5, ("C", "G"), seed=5)
    loose = demo.LooseFile("tiny loop.ogg", demo.SongSpec("tiny loop", 120.0, 4, "C", "major", 3.5, ("C",), seed=6),
                           "OGG", "VORBIS")
    monkeypatch.setattr(demo, "DEMO_SONGS", (tiny,))
    monkeypatch.setattr(demo, "LOOSE_FILES", (loose,))
    messages = []
    paths = demo.generate_demo_corpus(tmp_path, log=messages.append)
    assert paths == [tmp_path / "tiny, é", tmp_path / "loose" / "tiny loop.ogg"]
    assert demo.is_corpus_complete(tmp_path)
    mix = tmp_path / "tiny, é" / "full_mix.flac"
    stamp = mix.stat().st_mtime_ns

    messages.clear()
    assert demo.generate_demo_corpus(tmp_path, log=messages.append) == paths
    assert mix.stat().st_mtime_ns == stamp
    assert len(messages) == 1 and "nothing to do" in messages[0]

    (tmp_path / "tiny, é" / "bass.flac").unlink()  # a missing file makes it incomplete
    assert not demo.is_corpus_complete(tmp_path)
    demo.generate_demo_corpus(tmp_path)
    assert (tmp_path / "tiny, é" / "bass.flac").is_file() and demo.is_corpus_complete(tmp_path)

    (tmp_path / ".complete").write_text("mirflow-demo-corpus 0\n", encoding="utf-8")  # older generator
    assert not demo.is_corpus_complete(tmp_path)
    messages.clear()
    demo.generate_demo_corpus(tmp_path, log=messages.append)
    assert any("wrote" in m for m in messages) and demo.is_corpus_complete(tmp_path)

    stamp = mix.stat().st_mtime_ns
    time.sleep(0.01)
    demo.generate_demo_corpus(tmp_path, force=True)
    assert mix.stat().st_mtime_ns != stamp


def test_cli_on_a_complete_corpus_does_nothing_and_says_so(corpus):
    out_dir, _, _ = corpus
    stamp = (out_dir / demo.DEMO_SONGS[0].song_id / "full_mix.flac").stat().st_mtime_ns
    env = dict(os.environ, PYTHONPATH=str(SCRIPTS_DIR))
    result = subprocess.run([sys.executable, "-m", "mirflow.demo", str(out_dir)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout
    assert (out_dir / demo.DEMO_SONGS[0].song_id / "full_mix.flac").stat().st_mtime_ns == stamp


# ---------------------------------------------------------------- the truth is in the audio


def _onsets(mono: np.ndarray, sr: int, fmin: float, fmax: float, n_mels: int, log_power: bool) -> np.ndarray:
    """Onset times (s) of one frequency band, via librosa's spectral-flux onset detector.

    The spectrogram is already centred, so ``onset_strength`` must not pad again
    (``center=False``), or every onset comes out n_fft/2 late.
    """
    import librosa

    hop = 128
    mel = librosa.feature.melspectrogram(y=mono, sr=sr, n_fft=1024, hop_length=hop, n_mels=n_mels,
                                         fmin=fmin, fmax=fmax)
    spectrum = librosa.power_to_db(mel, ref=np.max) if log_power else mel
    envelope = librosa.onset.onset_strength(S=spectrum, sr=sr, hop_length=hop, center=False)
    return librosa.onset.onset_detect(onset_envelope=envelope, sr=sr, hop_length=hop, units="time")


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.song_id)
def test_drum_truth_matches_detected_onsets(spec, rendered):
    import mir_eval

    song = rendered[spec.song_id]
    drums = song.stems["drums"].mean(axis=0)
    truth = song.truth["drum_hits"]
    everything = np.unique(np.round(truth["kick"] + truth["snare"] + truth["hihat"], 9))
    # kick: the only strong energy below 150 Hz (linear power, so faint noise tails do not count);
    # hi-hat: the only energy above 6 kHz; all hits: full band
    for name, reference, band in [("kick", truth["kick"], (20.0, 150.0, 2, False)),
                                  ("hihat", truth["hihat"], (6000.0, 16000.0, 16, True)),
                                  ("all", everything, (30.0, 16000.0, 64, True))]:
        detected = _onsets(drums, song.sample_rate, *band)
        reference = np.asarray(reference)
        _, precision, recall = mir_eval.onset.f_measure(reference, detected, window=0.03)
        assert precision >= 0.95 and recall >= 0.95, (name, precision, recall)
        errors = np.array([np.min(np.abs(detected - t)) for t in reference])
        assert np.median(errors) < 0.015, (name, np.median(errors))


def _outside_notes_mask(notes: list[dict], frames: int, sr: int) -> np.ndarray:
    mask = np.ones(frames, dtype=bool)
    for note in notes:
        mask[int(np.floor(note["onset"] * sr)) - 1: int(np.ceil(note["offset"] * sr)) + 1] = False
    return mask


def _cents(f_hz: float, midi: int) -> float:
    return 1200.0 * np.log2(f_hz / demo.midi_to_hz(midi))


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.song_id)
def test_bass_notes_sound_at_the_truth_pitch_and_nowhere_else(spec, rendered):
    song = rendered[spec.song_id]
    sr = song.sample_rate
    bass = song.stems["bass"].mean(axis=0).astype(np.float64)
    notes = song.truth["bass_notes"]
    assert not np.any(bass[_outside_notes_mask(notes, bass.size, sr)])
    for note in notes:
        start = int(note["onset"] * sr) + int(0.01 * sr)
        stop = min(int(note["offset"] * sr), start + int(0.3 * sr))
        segment = bass[start:stop] * np.hanning(stop - start)
        spectrum = np.abs(np.fft.rfft(segment, n=1 << 17))
        freqs = np.fft.rfftfreq(1 << 17, 1.0 / sr)
        band = (freqs > 25) & (freqs < 400)
        peak_hz = freqs[band][np.argmax(spectrum[band])]
        assert abs(_cents(peak_hz, note["midi"])) < 30, (note, peak_hz)


@pytest.mark.parametrize("spec", [s for s in ALL_SPECS if not s.silent_vocals], ids=lambda s: s.song_id)
def test_vocal_notes_sound_at_the_truth_pitch_and_nowhere_else(spec, rendered):
    import librosa

    song = rendered[spec.song_id]
    sr = song.sample_rate
    vocals = song.stems["vocals"].mean(axis=0)
    notes = song.truth["vocal_notes"]
    assert not np.any(vocals[_outside_notes_mask(notes, vocals.size, sr)])
    hop = 512
    f0 = librosa.yin(vocals, fmin=150, fmax=900, sr=sr, frame_length=4096, hop_length=hop, center=False)
    frame_centres = (np.arange(f0.size) * hop + 2048) / sr
    for note in notes:
        inside = (frame_centres > note["onset"] + 0.06) & (frame_centres < note["offset"] - 0.1)
        assert inside.sum() >= 3, note
        assert abs(_cents(float(np.median(f0[inside])), note["midi"])) < 35, note


_KRUMHANSL_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_KRUMHANSL_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _chroma(mono: np.ndarray, sr: int) -> np.ndarray:
    import librosa

    return librosa.feature.chroma_stft(y=mono, sr=sr, n_fft=8192, hop_length=2048, tuning=0.0)


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda s: s.song_id)
def test_other_stem_chroma_shows_the_key_and_the_chords(spec, rendered):
    song = rendered[spec.song_id]
    sr = song.sample_rate
    chroma = _chroma(song.stems["other"].mean(axis=0), sr)
    profile = chroma.mean(axis=1)
    tonic = demo.pitch_class(spec.tonic)
    triad = {(tonic + s) % 12 for s in ((0, 3, 7) if spec.mode == "minor" else (0, 4, 7))}
    assert set(np.argsort(profile)[-3:].tolist()) == triad
    # Krumhansl-Schmuckler: the best-correlating of the 24 key profiles is the truth key
    scores = {(pc, mode): np.corrcoef(profile, np.roll(template, pc))[0, 1]
              for pc in range(12) for mode, template in (("major", _KRUMHANSL_MAJOR), ("minor", _KRUMHANSL_MINOR))}
    assert max(scores, key=scores.get) == (tonic, spec.mode)
    # every bar's chroma matches its labelled triad best among the 24 major/minor triads
    frame_times = np.arange(chroma.shape[1]) * 2048 / sr
    for chord in song.truth["chords"]:
        inside = (frame_times > chord["start"] + 0.05) & (frame_times < chord["end"] - 0.1)
        bar = chroma[:, inside].mean(axis=1)
        templates = {}
        for pc in range(12):
            for quality, steps in (("maj", (0, 4, 7)), ("min", (0, 3, 7))):
                template = np.zeros(12)
                template[[(pc + s) % 12 for s in steps]] = 1.0
                templates[(pc, quality)] = float(bar @ template)
        root, quality = chord["label"].split(":")
        assert max(templates, key=templates.get) == (demo.pitch_class(root), quality), chord
