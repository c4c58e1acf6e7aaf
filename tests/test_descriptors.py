"""Classic Essentia descriptors: saturation on exact constructions, danceability,
atonality, dynamic complexity and EBU R128 maxima on signals with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import as_signal, sine
from mirflow.features.descriptors import (
    KEYS,
    clipped_frames,
    compute_descriptors,
    frame_runs,
    saturation_events,
)

SR = 44100
FRAME = 256


def _clip_fixture():
    """4 s stereo, peak 0.5 except for clipped regions placed sample-exactly.

    Returns the signal and the expected event lengths in frames.
    """
    n = 4 * SR
    t = np.arange(n) / SR
    x = np.tile(0.5 * np.sin(2 * np.pi * 220 * t), (2, 1)).astype(np.float32)
    # A: frames 100..119 clipped positive in the LEFT channel only -> 20 frames.
    x[0, 100 * FRAME:120 * FRAME] = 1.0
    # B: frames 300..309, then a 15 ms (662-sample) unclipped gap, then 2560 clipped samples.
    #    The gap leaves frames 310 and 311 unclipped (11.6 ms <= 20 ms) -> merged, frames 300..322.
    b2 = 310 * FRAME + 662
    x[:, 300 * FRAME:310 * FRAME] = -1.0
    x[:, b2:b2 + 2560] = 0.97
    # C: a 5 ms (220-sample) clipped burst inside frame 500 -> 1 frame (5.8 ms) < 10 ms, dropped.
    x[:, 500 * FRAME + 10:500 * FRAME + 230] = 0.96
    # D: frames 600..609, a 30 ms (1323-sample) gap, 2560 clipped samples -> the gap leaves
    #    frames 610..614 unclipped (29 ms > 20 ms): two events, 10 and 11 frames (615..625).
    d2 = 610 * FRAME + 1323
    x[:, 600 * FRAME:610 * FRAME] = 1.0
    x[:, d2:d2 + 2560] = 1.0
    return as_signal(x, SR), [(100, 120), (300, 323), (600, 610), (615, 626)]


def test_clipped_frames_and_runs_on_a_small_array():
    x = np.zeros(10 * 4)
    x[5] = 0.95            # frame 1, exactly at the threshold -> clipped
    x[9] = -0.96           # frame 2
    x[33] = 0.9499         # frame 8, just below -> not clipped
    flags = clipped_frames(x, frame_length=4, threshold=0.95)
    assert flags.tolist() == [False, True, True, False, False, False, False, False, False, False]
    assert frame_runs(flags) == [(1, 3)]


def test_saturation_events_merge_drop_and_count_exactly():
    signal, expected = _clip_fixture()
    events = saturation_events(signal.samples, SR)
    expected_s = [(a * FRAME / SR, b * FRAME / SR) for a, b in expected]
    assert len(events) == 4
    np.testing.assert_allclose(events, expected_s, rtol=0, atol=1e-12)

    result = compute_descriptors(signal)
    assert result.values["saturation_count"] == 4
    expected_ratio = sum(b - a for a, b in expected) * FRAME / (4 * SR)
    assert result.values["saturation_ratio"] == pytest.approx(expected_ratio, abs=1e-12)


def test_saturation_gap_threshold_is_20_ms():
    # Two 10-frame clipped runs separated by exactly 3 unclipped frames (17.4 ms) merge;
    # by 4 frames (23.2 ms) they do not.
    for gap_frames, count in ((3, 1), (4, 2)):
        x = np.zeros(SR, dtype=np.float32)
        x[10 * FRAME:20 * FRAME] = 1.0
        start = (20 + gap_frames) * FRAME
        x[start:start + 10 * FRAME] = 1.0
        assert len(saturation_events(x, SR)) == count


def test_saturation_of_a_clean_signal_is_zero():
    result = compute_descriptors(as_signal(sine(440, 3.0, SR, peak_dbfs=-1.0), SR))
    assert result.values["saturation_count"] == 0
    assert result.values["saturation_ratio"] == 0.0


def _drum_loop(duration_s: float, bpm: float, rng) -> np.ndarray:
    n = int(duration_s * SR)
    x = np.zeros(n)
    eighth = 30.0 / bpm
    length = int(0.15 * SR)
    tt = np.arange(length) / SR
    for i in range(int(duration_s / eighth)):
        k = int(round(i * eighth * SR))
        if k + length > n:
            break
        if i % 4 == 0:   # kick on beats 1 and 3
            x[k:k + length] += np.sin(2 * np.pi * (50 + 100 * np.exp(-tt * 30)) * tt) * np.exp(-tt * 20)
        if i % 4 == 2:   # snare on 2 and 4
            x[k:k + length] += 0.5 * rng.standard_normal(length) * np.exp(-tt * 25)
        x[k:k + length // 3] += 0.15 * rng.standard_normal(length // 3) * np.exp(-tt[:length // 3] * 80)
    return (0.5 * x).astype(np.float32)


def test_danceability_higher_for_steady_drums_than_noise():
    rng = np.random.default_rng(7)
    drums = compute_descriptors(as_signal(_drum_loop(12.0, 120.0, rng), SR))
    noise = compute_descriptors(as_signal((0.3 * rng.standard_normal(12 * SR)).astype(np.float32), SR))
    # Measured: drum loop ~5.7, white noise ~1.8 (Essentia's scale is open-ended above ~3).
    assert drums.values["danceability_dfa"] > noise.values["danceability_dfa"] + 1.0
    assert 1.0 < noise.values["danceability_dfa"] < 3.0
    assert drums.meta["danceability_dfa_method"]["library"].startswith("essentia Danceability")


def _cadence(tonic_midi: int, seconds_per_chord: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds_per_chord * SR)) / SR
    env = np.minimum(1.0, t / 0.01) * np.exp(-1.5 * t)

    def tone(midi):
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        return env * sum(0.6 ** (h - 1) * np.sin(2 * np.pi * f0 * h * t) for h in range(1, 7))

    chords = [(0, 4), (5, 4), (7, 4), (0, 4)] * 2
    return 0.08 * np.concatenate([sum(tone(tonic_midi + r + o) for o in (-12, 0, third, 7))
                                  for r, third in chords]).astype(np.float32)


def test_atonality_lower_for_tonal_cadence_than_noise():
    rng = np.random.default_rng(3)
    tonal = compute_descriptors(as_signal(_cadence(60), SR))
    noise = compute_descriptors(as_signal((0.2 * rng.standard_normal(8 * SR)).astype(np.float32), SR))
    assert tonal.values["atonality_key_profile"] < 0.3
    assert noise.values["atonality_key_profile"] > tonal.values["atonality_key_profile"] + 0.2
    assert tonal.meta["atonality_key_profile_key"] == "C major"
    assert tonal.meta["atonality_key_profile_method"]["profileType"] == "bgate"


def test_ebur128_maxima_match_the_tech_3341_sine_case():
    # EBU Tech 3341 case 1: stereo 1 kHz sine at -23 dBFS peak reads -23.0 LUFS.
    stereo = compute_descriptors(as_signal(sine(1000, 10.0, SR, peak_dbfs=-23.0), SR))
    assert stereo.values["loudness_momentary_max"] == pytest.approx(-23.0, abs=0.1)
    assert stereo.values["loudness_shortterm_max"] == pytest.approx(-23.0, abs=0.1)
    # The same sine in one channel only is 3 dB quieter.
    mono = compute_descriptors(as_signal(sine(1000, 10.0, SR, peak_dbfs=-23.0, channels=1), SR))
    assert mono.values["loudness_momentary_max"] == pytest.approx(-26.01, abs=0.1)


def test_dynamic_complexity_zero_for_steady_tone_and_positive_for_bursts():
    steady = compute_descriptors(as_signal(sine(440, 6.0, SR, peak_dbfs=-12.0), SR))
    x = sine(440, 6.0, SR, peak_dbfs=-12.0)
    gain = np.where((np.arange(x.shape[1]) // SR) % 2 == 0, 1.0, 0.1).astype(np.float32)  # 20 dB steps per second
    bursts = compute_descriptors(as_signal(x * gain, SR))
    assert steady.values["dynamic_complexity"] < 0.5
    assert bursts.values["dynamic_complexity"] > 5.0


def test_silence_and_short_input():
    silent = compute_descriptors(as_signal(np.zeros((2, 12 * SR), np.float32), SR))
    assert silent.values == {"saturation_count": 0, "saturation_ratio": 0.0}
    for key in ("danceability_dfa", "atonality_key_profile", "dynamic_complexity", "loudness_momentary_max",
                "loudness_shortterm_max"):
        assert silent.absent[key] == "silent"
    assert set(silent.values) | set(silent.absent) == set(KEYS)

    short = compute_descriptors(as_signal(sine(440, 2.0, SR, peak_dbfs=-6.0), SR))
    assert short.absent["danceability_dfa"].startswith("too short")
    assert short.absent["loudness_shortterm_max"].startswith("too short")
    assert "loudness_momentary_max" in short.values and "atonality_key_profile" in short.values
    assert set(short.values) | set(short.absent) == set(KEYS)
    tiny = compute_descriptors(as_signal(sine(440, 0.5, SR, peak_dbfs=-6.0), SR))
    assert tiny.absent["atonality_key_profile"] == "too short (0.50 s < 1.0 s)"
