"""Training crops: where each crop of a track starts and ends.

Three modes (Stable Audio Tools trains on fixed-length windows):

* ``sequential``: back-to-back windows of exactly ``length`` samples, starting at
  the end of the leading silence;
* ``beat_aligned``: each crop starts on a downbeat; its end is snapped back to a
  downbeat (optionally so that the bar count is divisible by 4) unless that
  would make it shorter than ``min_fraction`` of the target, and then to a zero
  crossing within ``zero_crossing_ms``; the next crop starts where this one ended;
* ``overlap``: as beat_aligned, but the next crop starts at the downbeat nearest
  the previous crop's middle.

Grid fallbacks, recorded in the plan: downbeats -> beats -> sequential.
Positions are in samples of the track's own sample rate.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_PARAMS = {
    "mode": "beat_aligned",          # sequential | beat_aligned | overlap
    "length_samples": 2097152,       # at 44.1 kHz about 47.5 s; 524288 (11.9 s) is common too
    "reference_sample_rate": 44100,  # length_samples refers to this rate; other rates scale it
    "min_fraction": 0.75,            # a crop is never shorter than this share of the target length
    "bars_divisible_by_4": True,
    "zero_crossing_ms": 50.0,
    "fade_ms": 10.0,
    "silence_threshold_db": -72.0,
    "silence_window": 4410,          # samples per window when finding the end of the leading silence
    "skip_stems": ["vocals"],        # stems not cropped
}
MODES = ("sequential", "beat_aligned", "overlap")


@dataclass(frozen=True)
class Crop:
    """One crop: [start, end) in samples."""

    index: int
    start: int
    end: int


@dataclass
class CropPlan:
    crops: list[Crop]
    meta: dict = field(default_factory=dict)


def leading_silence_end(mono: np.ndarray, threshold_db: float = -72.0, window: int = 4410) -> int:
    """First sample of the first window whose RMS exceeds ``threshold_db`` dBFS (window-aligned).

    Returns ``len(mono)`` for a signal that is silent throughout.
    """
    n_windows = len(mono) // window
    if n_windows == 0:
        return 0 if np.sqrt(np.mean(mono.astype(np.float64) ** 2)) > 10 ** (threshold_db / 20) else len(mono)
    frames = mono[: n_windows * window].astype(np.float64).reshape(n_windows, window)
    loud = np.sqrt((frames**2).mean(axis=1)) > 10 ** (threshold_db / 20)
    if not loud.any():
        tail = mono[n_windows * window:]
        return len(mono) - len(tail) if tail.size and np.sqrt(np.mean(tail**2)) > 10 ** (threshold_db / 20) \
            else len(mono)
    return int(np.argmax(loud)) * window


def snap_to_zero_crossing(mono: np.ndarray, index: int, max_shift: int) -> int:
    """The sample index nearest ``index`` (within ``max_shift``) where the signal changes sign or is 0.

    Returns ``index`` unchanged when there is no crossing in the window.
    """
    lo, hi = max(1, index - max_shift), min(len(mono) - 1, index + max_shift)
    if hi <= lo:
        return index
    seg = mono[lo - 1: hi + 1]
    crossings = np.nonzero((np.signbit(seg[:-1]) != np.signbit(seg[1:])) | (seg[1:] == 0))[0] + lo
    if crossings.size == 0:
        return index
    return int(crossings[np.argmin(np.abs(crossings - index))])


def sequential_crops(n_samples: int, length: int, start: int) -> list[Crop]:
    """Back-to-back crops of exactly ``length`` samples from ``start``; the incomplete tail is dropped."""
    starts = range(start, n_samples - length + 1, length)
    return [Crop(i, s, s + length) for i, s in enumerate(starts)]


def _nearest(points: np.ndarray, value: float) -> int:
    return int(np.argmin(np.abs(points - value)))


def grid_aligned_crops(n_samples: int, length: int, bar_lines: np.ndarray, start_sample: int, mono: np.ndarray,
                       params: dict, overlap: bool) -> list[Crop]:
    """Crops that start on bar lines and end on bar lines where the length allows.

    Parameters
    ----------
    n_samples : int
        Track length in samples.
    length : int
        Target crop length in samples.
    bar_lines : np.ndarray
        Ascending positions (samples) of the downbeats (or beats, as a fallback).
    start_sample : int
        End of the leading silence: the first crop starts at the bar line nearest it.
    mono : np.ndarray
        Mono signal, for zero-crossing snapping.
    params : dict
        ``min_fraction``, ``bars_divisible_by_4``, ``zero_crossing_ms`` and the sample rate as ``sample_rate``.
    overlap : bool
        Next crop starts at the bar line nearest the previous crop's middle.
    """
    min_len = int(np.ceil(params["min_fraction"] * length))
    max_shift = int(round(params["zero_crossing_ms"] / 1000.0 * params["sample_rate"]))
    crops: list[Crop] = []
    if bar_lines.size == 0:
        return crops
    first = bar_lines[_nearest(bar_lines, start_sample)]
    start = int(first)
    while start + min_len <= n_samples:
        target_end = start + length
        inside = bar_lines[(bar_lines > start + min_len - 1) & (bar_lines <= min(target_end, n_samples))]
        if params["bars_divisible_by_4"] and inside.size:
            first_bar = _nearest(bar_lines, start)
            counts = np.array([_nearest(bar_lines, e) - first_bar for e in inside])
            divisible = inside[counts % 4 == 0]
            inside = divisible if divisible.size else inside
        if inside.size:
            end = snap_to_zero_crossing(mono, int(inside[-1]), max_shift)
        elif target_end <= n_samples:
            # no bar line in [min_len, length]: keep the full length
            end = snap_to_zero_crossing(mono, target_end, max_shift)
        else:
            end = n_samples  # a tail crop up to the end of the track, kept when long enough
        if end - start < min_len or end > n_samples:
            break
        crops.append(Crop(len(crops), start, end))
        if overlap:
            nxt = int(bar_lines[_nearest(bar_lines, start + (end - start) / 2)])
            if nxt <= start:
                later = bar_lines[bar_lines > start]
                if later.size == 0:
                    break
                nxt = int(later[0])
            start = snap_to_zero_crossing(mono, nxt, max_shift)
        else:
            start = end
    return crops


def plan_crops(mono: np.ndarray, sample_rate: int, beats: np.ndarray, downbeats: np.ndarray,
               params: dict | None = None) -> CropPlan:
    """Crop boundaries for a track, with fallbacks downbeats -> beats -> sequential.

    Parameters
    ----------
    mono : np.ndarray
        Mono downmix of the full mix (for silence and zero crossings).
    sample_rate : int
        Hz.
    beats, downbeats : np.ndarray
        Grid times in seconds.
    params : dict, optional
        Overrides of :data:`DEFAULT_PARAMS`.
    """
    p = {**DEFAULT_PARAMS, **(params or {}), "sample_rate": sample_rate}
    if p["mode"] not in MODES:
        raise ValueError(f"crop mode must be one of {MODES}, got {p['mode']!r}")
    length = int(round(p["length_samples"] * sample_rate / p["reference_sample_rate"]))
    n = len(mono)
    start = leading_silence_end(mono, p["silence_threshold_db"], int(p["silence_window"]))
    meta = {"requested_mode": p["mode"], "length_samples": length, "sample_rate": sample_rate,
            "leading_silence_end_sample": start}
    if start >= n:
        meta.update(mode_used="none", reason="the track is silent")
        return CropPlan([], meta)
    if p["mode"] != "sequential":
        for grid_name, grid in (("downbeats", downbeats), ("beats", beats)):
            lines = np.unique(np.round(np.asarray(grid, dtype=np.float64) * sample_rate).astype(np.int64))
            lines = lines[(lines >= 0) & (lines < n)]
            if lines.size >= 2:
                crops = grid_aligned_crops(n, length, lines, start, mono, p, overlap=p["mode"] == "overlap")
                meta.update(mode_used=p["mode"], grid=grid_name)
                if grid_name != "downbeats":
                    meta["fallback"] = "no downbeats: crops aligned to beats"
                if not crops:
                    meta["reason"] = f"the track is shorter than {p['min_fraction']:.0%} of a crop after its start"
                return CropPlan(crops, meta)
        meta["fallback"] = "no beat grid: sequential crops"
    crops = sequential_crops(n, length, start)
    meta.update(mode_used="sequential", grid=None)
    if not crops:
        meta["reason"] = "the track is shorter than one crop after its leading silence"
    return CropPlan(crops, meta)


def apply_fades(audio: np.ndarray, sample_rate: int, fade_ms: float) -> np.ndarray:
    """Linear fade-in and fade-out of ``fade_ms`` on a (channels, frames) crop (returns a copy)."""
    out = np.array(audio, dtype=np.float32, copy=True)
    n = min(int(round(fade_ms / 1000.0 * sample_rate)), out.shape[-1] // 2)
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)
        out[..., :n] *= ramp
        out[..., -n:] *= ramp[::-1]
    return out


def slice_grid(times: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """Grid times inside [start_s, end_s), relative to the crop start (seconds)."""
    times = np.asarray(times, dtype=np.float64)
    return times[(times >= start_s) & (times < end_s)] - start_s
