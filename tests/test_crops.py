"""Crop boundaries against grids with exactly known positions."""
import numpy as np
import pytest

from mirflow.crops import (
    apply_fades,
    leading_silence_end,
    plan_crops,
    sequential_crops,
    slice_grid,
    snap_to_zero_crossing,
)

SR = 1000  # 1 kHz keeps sample arithmetic readable


def _music(seconds, silence_s=0.0, freq=50.0):
    t = np.arange(int(seconds * SR)) / SR
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    x[: int(silence_s * SR)] = 0.0
    return x.astype(np.float32)


def test_leading_silence_is_found_to_the_window():
    x = _music(10, silence_s=2.0)
    assert leading_silence_end(x, -72, 100) == 2000
    assert leading_silence_end(np.zeros(5000), -72, 100) == 5000


def test_sequential_crops_are_back_to_back_and_drop_the_tail():
    crops = sequential_crops(10_500, 3000, 500)
    assert [(c.start, c.end) for c in crops] == [(500, 3500), (3500, 6500), (6500, 9500)]


def test_zero_crossing_snap_finds_the_nearest_sign_change():
    x = _music(1, freq=10)  # crossings every 50 samples
    assert snap_to_zero_crossing(x, 210, 30) in (200, 201)
    assert snap_to_zero_crossing(np.ones(100), 50, 10) == 50


def _plan(x, beats, downbeats, **params):
    base = {"length_samples": 8000, "reference_sample_rate": SR, "zero_crossing_ms": 0.0, "fade_ms": 0.0,
            "silence_window": 100}
    return plan_crops(x, SR, np.asarray(beats, float), np.asarray(downbeats, float), {**base, **params})


def test_beat_aligned_starts_on_downbeats_and_snaps_end_back_to_a_downbeat_with_bar_count_divisible_by_4():
    x = _music(40, silence_s=1.05)
    downbeats = np.arange(1.0, 40, 1.5)  # bars of 1.5 s: 8 s target -> 5 bars would fit, 4 is divisible
    plan = _plan(x, downbeats, downbeats)
    first = plan.crops[0]
    assert first.start == 1000  # the downbeat nearest the end of the silence (1.1 s, window-aligned)
    assert first.end == 7000     # 4 bars = 6 s: >= 75 % of 8 s and divisible by 4
    assert plan.crops[1].start == first.end  # back to back
    assert plan.meta["mode_used"] == "beat_aligned" and plan.meta["grid"] == "downbeats"
    for c in plan.crops:
        assert (c.end - c.start) >= 0.75 * 8000


def test_keeps_full_length_when_snapping_would_be_too_short():
    x = _music(40)
    downbeats = np.arange(0.0, 40, 7.0)  # the bar line at 7 s lies in [6 s, 8 s]: the end snaps back to it
    plan = _plan(x, downbeats, downbeats, bars_divisible_by_4=False)
    assert plan.crops[0].end - plan.crops[0].start == 7000
    downbeats = np.arange(0.0, 40, 10.0)  # no bar line between 6 and 8 s: keep the full 8 s
    plan = _plan(x, downbeats, downbeats, bars_divisible_by_4=False)
    assert plan.crops[0].end - plan.crops[0].start == 8000


def test_overlap_mode_starts_next_crop_at_the_downbeat_nearest_the_middle():
    x = _music(40)
    downbeats = np.arange(0.0, 40, 1.0)
    plan = _plan(x, downbeats, downbeats, mode="overlap", bars_divisible_by_4=False)
    a, b, c = plan.crops[:3]
    assert (a.start, a.end) == (0, 8000)
    assert (b.start, b.end) == (4000, 12000) and c.start == 8000


def test_fallbacks_downbeats_to_beats_to_sequential_are_recorded():
    x = _music(30)
    plan = _plan(x, np.arange(0, 30, 0.5), [])
    assert plan.meta["grid"] == "beats" and "no downbeats" in plan.meta["fallback"]
    plan = _plan(x, [], [])
    assert plan.meta["mode_used"] == "sequential" and "no beat grid" in plan.meta["fallback"]
    assert [(c.start, c.end) for c in plan.crops] == [(0, 8000), (8000, 16000), (16000, 24000)]


def test_short_or_silent_tracks_give_no_crops_with_a_reason():
    assert _plan(_music(5), [], []).crops == []
    assert "shorter" in _plan(_music(5), [], []).meta["reason"]
    plan = _plan(np.zeros(20000, dtype=np.float32), [], [])
    assert plan.crops == [] and plan.meta["reason"] == "the track is silent"


def test_fades_and_grid_slicing():
    x = np.ones((2, 1000), dtype=np.float32)
    y = apply_fades(x, 1000, 10.0)
    assert y[0, 0] == 0.0 and y[0, 5] == pytest.approx(0.5) and y[0, 10] == 1.0
    assert y[1, -1] == 0.0 and y[1, -2] == pytest.approx(0.1)
    assert x[0, 0] == 1.0  # input untouched
    np.testing.assert_allclose(slice_grid([0.5, 1.0, 2.5, 3.0], 1.0, 3.0), [0.0, 1.5])


def test_tail_crop_ends_at_the_track_end_when_long_enough():
    x = _music(8.0)
    downbeats = np.array([0.5, 2.5, 4.5])  # no bar line in [6.5 s, 8.5 s]; the full 8 s would end at 8.5 s > 8 s
    plan = _plan(x, downbeats, downbeats, bars_divisible_by_4=False)
    assert [(c.start, c.end) for c in plan.crops] == [(500, 8000)]  # 7.5 s >= 75 % of 8 s
    plan = _plan(_music(6.0), downbeats[:2], downbeats[:2], bars_divisible_by_4=False)
    assert plan.crops == []  # 5.5 s < 6 s: dropped
