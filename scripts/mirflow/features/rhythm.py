"""Rhythm: beat, downbeat and onset grids plus the rhythm features derived from them.

Two entry points:

* :func:`analyse_rhythm` analyses the full mix and returns the ``rhythm``
  family's values together with the grids (beats, downbeats, onsets) that
  training crops, drum-MIDI quantisation and captions build on;
* :func:`analyse_stem_rhythm` analyses one separated stem against the full
  mix's beat grid (family ``rhythm_stems``; the caller appends ``_<stem>``).

Detectors (library calls in :mod:`mirflow.features.rhythm_detectors`):

* beats and downbeats: madmom's downbeat RNN (run ONCE per track) decoded by
  its bar-aware DBN with 3 and 4 beats per bar; every beat comes from that
  decoder and the downbeats are its beats at bar position 1 (parameter
  ``beat_method``; measured against DBNBeatTrackingProcessor on the demo
  songs and MDB Drums, see ``benchmarks/rhythm_accuracy.py``);
* tempo cross-checks: madmom's comb-filter TempoEstimationProcessor on the
  same beat activation, and Essentia's RhythmExtractor2013 ("multifeature");
* onsets: madmom's CNN onset detector (better F-measure than librosa's
  spectral flux on MDB Drums, 0.79 vs 0.75, and on soft vocal onsets); its
  activation at each onset is the onset strength.

All madmom input is 44.1 kHz mono (resampled with soxr when needed; meta says
so). Nothing is invented: a value that cannot be computed is absent with a
reason, and empty grids are valid output (meta says why). madmom's DBN decodes
a regular grid even from a drone or noise, so a grid whose beats the network's
activation does not support is discarded (see :func:`beat_evidence`).

Known limits: times are frame-quantised to 10 ms (so ``bpm`` of a 110 BPM
track reads 109.09 or 111.11); the CNN ignores isolated clicks shorter than
about 30 ms (metronome ticks), which real instruments do not produce; on
MDB Drums the downbeat tracker puts the bar line half a bar off on 5 of 17
tracks (beats are right).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import AudioSignal
from ..params import as_dict, param
from ..result import FeatureResult
from . import Family
from . import rhythm_detectors as det

BEAT_METHODS = ("downbeat_dbn", "beat_dbn_shared", "beat_dbn_separate")


@dataclass(frozen=True)
class RhythmParams:
    """Parameters of ``rhythm`` and ``rhythm_stems`` (config section ``rhythm``); the detectors' defaults are
    madmom's own. ``analyse_*`` record the values used in ``meta["params"]``."""

    # --- beat and downbeat tracking (madmom) ---
    beat_method: str = param("downbeat_dbn", choices=BEAT_METHODS,
                             doc="How the beat grid is made (see rhythm_detectors.track_beats_and_downbeats)")
    fps: int = param(100, unit="frames/s", choices=(100,), doc="Activation frame rate (madmom's networks: 100)")
    beats_per_bar: tuple[int, ...] = param((3, 4), choices=(2, 3, 4, 5, 6, 7), min_items=1,
                                           doc="Bar lengths the downbeat DBN may choose from")
    downbeat_min_bpm: float = param(55.0, unit="BPM", above=0.0, doc="Slowest tempo of the downbeat DBN")
    downbeat_max_bpm: float = param(205.0, unit="BPM", above=0.0, doc="Fastest tempo of the downbeat DBN")
    downbeat_num_tempi: int = param(60, minimum=1, doc="Tempo states per bar length of the downbeat DBN")
    downbeat_threshold: float = param(0.05, minimum=0.0, maximum=1.0,
                                      doc="Decode only from the first to the last frame with activation >= this")
    beat_min_bpm: float = param(55.0, unit="BPM", above=0.0, doc="Slowest tempo of the beat DBN (beat_dbn_*)")
    beat_max_bpm: float = param(215.0, unit="BPM", above=0.0, doc="Fastest tempo of the beat DBN (beat_dbn_*)")
    beat_threshold: float = param(0.0, minimum=0.0, maximum=1.0, doc="Activation threshold of the beat DBN")
    transition_lambda: float = param(100.0, above=0.0, doc="Tempo-change penalty of both DBNs")
    observation_lambda: float = param(16.0, above=0.0, doc="Beat-state share of a beat period in both DBNs")
    # A decoded grid is rejected as "no beats" when its median beat activation is below min_median_beat_activation,
    # or below weak_beat_activation while the beats also stand out less than min_beat_contrast times from the
    # off-beats (see beat_evidence).
    min_median_beat_activation: float = param(0.05, minimum=0.0, maximum=1.0,
                                              doc="Below this median activation at the beats: no beats")
    weak_beat_activation: float = param(0.3, minimum=0.0, maximum=1.0,
                                        doc="Below this median activation the beats must stand out (contrast)")
    min_beat_contrast: float = param(2.5, minimum=0.0, doc="Least beat/off-beat activation ratio of a weak grid")
    # --- tempo cross-checks ---
    tempo_min_bpm: float = param(40.0, unit="BPM", above=0.0, doc="Slowest tempo of madmom's comb-filter estimator")
    tempo_max_bpm: float = param(250.0, unit="BPM", above=0.0, doc="Fastest tempo of madmom's comb-filter estimator")
    tempo_act_smooth_s: float = param(0.14, unit="s", minimum=0.0, doc="Activation smoothing of the tempo estimator")
    tempo_hist_smooth_bins: int = param(9, unit="bins", minimum=0, doc="Histogram smoothing of the tempo estimator")
    tempo_comb_alpha: float = param(0.79, above=0.0, maximum=1.0, doc="Comb filter gain of the tempo estimator")
    essentia_method: str = param("multifeature", choices=("multifeature", "degara"),
                                 doc="Essentia RhythmExtractor2013 method")
    essentia_min_bpm: float = param(40.0, unit="BPM", above=0.0, doc="Slowest tempo of Essentia's estimate")
    essentia_max_bpm: float = param(208.0, unit="BPM", above=0.0, doc="Fastest tempo of Essentia's estimate")
    # --- onsets (madmom CNNOnsetProcessor + peak picking of madmom's CNNOnsetDetector) ---
    onset_threshold: float = param(0.54, minimum=0.0, maximum=1.0, doc="Peak-picking threshold of the onset CNN")
    onset_smooth_s: float = param(0.05, unit="s", minimum=0.0, doc="Smoothing before onset peak picking")
    onset_pre_max_s: float = param(0.01, unit="s", minimum=0.0, doc="An onset peak is the maximum this far back")
    onset_post_max_s: float = param(0.01, unit="s", minimum=0.0, doc="An onset peak is the maximum this far ahead")
    onset_combine_s: float = param(0.03, unit="s", minimum=0.0, doc="Onsets closer than this are one onset")
    # --- features ---
    beat_tolerance_s: float = param(0.07, unit="s", above=0.0, doc="An onset within this of a beat is on the beat")
    ioi_histogram_bins: int = param(50, unit="bins", minimum=1, doc="Bins of the IOI entropy (rhythmic_complexity)")
    bpm_defined_min_beats: int = param(15, minimum=0, doc="bpm_is_defined needs at least this many beats")
    bpm_defined_min_bpm: float = param(40.0, unit="BPM", minimum=0.0, doc="bpm_is_defined: slowest tempo")
    bpm_defined_max_bpm: float = param(300.0, unit="BPM", minimum=0.0, doc="bpm_is_defined: fastest tempo")
    bpm_defined_max_ibi_std_s: float = param(0.15, unit="s", minimum=0.0,
                                             doc="bpm_is_defined: largest IBI standard deviation (or stable segments)")
    stable_max_ibi_change_s: float = param(0.05, unit="s", minimum=0.0,
                                           doc="Consecutive IBIs of a stable segment differ by at most this")
    stable_min_intervals: int = param(4, minimum=1, doc="Least IBIs of a stable segment")
    stable_max_std_s: float = param(0.15, unit="s", minimum=0.0, doc="Largest IBI standard deviation of a stable "
                                                                     "segment")
    stable_min_coverage: float = param(0.1, minimum=0.0, maximum=1.0,
                                       doc="Share of the duration stable segments must cover for bpm_is_defined")
    stem_density_window_s: float = param(4.0, unit="s", above=0.0, doc="Window of the per-stem onset densities")
    stem_density_hop_s: float = param(2.0, unit="s", above=0.0, doc="Hop of the per-stem onset densities")
    # --- input checks ---
    silence_rms_dbfs: float = param(-60.0, unit="dBFS", doc="Whole-signal RMS below this counts as silent")
    # madmom needs MADMOM_MIN_SAMPLES (4096) samples at 44.1 kHz: 0.0929 s.
    min_duration_s: float = param(1.0, unit="s", minimum=round(det.MADMOM_MIN_SAMPLES / det.MADMOM_SAMPLE_RATE, 3),
                                  doc="Shorter input is not analysed (too short)")


#: Full-mix keys, in catalogue order.
FULL_MIX_KEYS = (
    "bpm", "bpm_is_defined", "beat_count", "beat_regularity", "downbeat_count", "beats_per_bar",
    "bpm_madmom", "bpm_essentia", "onset_count", "onset_density", "onset_strength_mean",
    "onset_strength_std", "syncopation", "on_beat_ratio", "rhythmic_complexity", "rhythmic_evenness",
    "ioi_mean", "ioi_std",
)
#: Per-stem keys without the ``_<stem>`` suffix.
STEM_KEYS = ("onset_density_average", "onset_density_variance", "syncopation", "rhythmic_complexity",
             "rhythmic_evenness")

# Boundaries ("<= 0.15 s", "within 0.07 s") are inclusive; times that are exact on paper
# (0.55 - 0.50) differ from the boundary by float rounding, which this absorbs.
_EPS = 1e-9


@dataclass(frozen=True)
class RhythmGrids:
    """Time grids of one full mix.

    Attributes
    ----------
    beats, downbeats, onsets : np.ndarray
        Times in seconds, float64, ascending; empty when none were found (the
        result's ``meta["empty_grids"]`` says why).
    onset_strengths : np.ndarray
        The onset detector's activation (0-1) at each onset, same length as ``onsets``.
    """

    beats: np.ndarray
    downbeats: np.ndarray
    onsets: np.ndarray
    onset_strengths: np.ndarray

    @staticmethod
    def empty() -> RhythmGrids:
        e = np.zeros(0, dtype=np.float64)
        return RhythmGrids(beats=e, downbeats=e.copy(), onsets=e.copy(), onset_strengths=e.copy())


# --------------------------------------------------------------------------- grid files

def format_times(times) -> str:
    """Text form of a time grid: one ``%.6f`` time in seconds per line, ascending.

    Parameters
    ----------
    times : array_like
        Times in seconds.

    Returns
    -------
    str
        ``"0.500000\\n1.000000\\n"``; ``""`` for no times.

    Raises
    ------
    ValueError
        If a time is negative, NaN or infinite, or the times are not ascending.
    """
    arr = np.asarray(times, dtype=np.float64).ravel()
    if arr.size == 0:
        return ""
    if not np.all(np.isfinite(arr)):
        raise ValueError("time grid contains NaN or infinite values")
    if np.any(arr < 0):
        raise ValueError(f"time grid contains a negative time ({arr.min():.6f} s)")
    if np.any(np.diff(arr) < 0):
        raise ValueError("time grid is not in ascending order")
    return "".join(f"{t:.6f}\n" for t in arr)


def parse_times(text: str) -> np.ndarray:
    """Read a time grid written by :func:`format_times`.

    Parameters
    ----------
    text : str
        One time in seconds per line; blank lines are ignored.

    Returns
    -------
    np.ndarray
        float64 times in seconds, ascending (empty for an empty text).

    Raises
    ------
    ValueError
        For a line that is not a number (naming the line), a negative or
        non-finite time, or times out of order.
    """
    from ..errors import ResultFileError  # a ValueError too

    values = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            values.append(float(line))
        except ValueError:
            raise ResultFileError("<time grid>", f"line {number}: {line[:80]!r} is not a number") from None
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ResultFileError("<time grid>", "it contains a negative, NaN or infinite time")
    if np.any(np.diff(arr) < 0):
        raise ResultFileError("<time grid>", "the times are not in ascending order")
    return arr


def read_times(path: str | os.PathLike) -> np.ndarray:
    """Read a time grid file (``.BEATS_GRID``, ``.DOWNBEATS``, ``.ONSETS``); see :func:`parse_times`.

    Raises
    ------
    ResultFileError
        Naming the file, for bytes that are not UTF-8 or a grid that :func:`parse_times` rejects.
    """
    from ..errors import ResultFileError

    data = Path(path).read_bytes()
    try:
        return parse_times(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ResultFileError(path, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    except ResultFileError as err:
        raise ResultFileError(path, err.reason) from None


# --------------------------------------------------------------------------- pure features

def intervals(times: np.ndarray) -> np.ndarray:
    """Differences between consecutive times (s): inter-beat or inter-onset intervals."""
    return np.diff(np.sort(np.asarray(times, dtype=np.float64)))


def bpm_from_beats(beats: np.ndarray) -> float | None:
    """Tempo as 60 / median inter-beat interval (BPM); None for fewer than 2 beats."""
    ibis = intervals(beats)
    if ibis.size == 0:
        return None
    median = float(np.median(ibis))
    if median <= 0:
        return None
    return 60.0 / median


def stable_segments(ibis: np.ndarray, max_change_s: float, min_intervals: int,
                    max_std_s: float) -> list[tuple[int, int]]:
    """Runs of steady inter-beat intervals.

    A run is a maximal sequence of IBIs in which each differs from the previous
    one by at most ``max_change_s``; it counts when it holds at least
    ``min_intervals`` intervals and their standard deviation is at most
    ``max_std_s`` (boundaries inclusive).

    Parameters
    ----------
    ibis : np.ndarray
        Inter-beat intervals in seconds, in time order.
    max_change_s, max_std_s : float
        Thresholds in seconds.
    min_intervals : int
        Minimum number of intervals in a run.

    Returns
    -------
    list of (start, stop)
        Index ranges ``ibis[start:stop]`` of the qualifying runs.
    """
    ibis = np.asarray(ibis, dtype=np.float64)
    if ibis.size == 0:
        return []
    breaks = np.nonzero(np.abs(np.diff(ibis)) > max_change_s + _EPS)[0] + 1
    bounds = np.concatenate(([0], breaks, [ibis.size]))
    runs = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        run = ibis[start:stop]
        if run.size >= min_intervals and float(np.std(run)) <= max_std_s + _EPS:
            runs.append((int(start), int(stop)))
    return runs


def stable_coverage(beats: np.ndarray, duration_s: float, p: RhythmParams = RhythmParams()) -> float:
    """Share (0-1) of ``duration_s`` covered by stable IBI segments (see :func:`stable_segments`).

    Uses ``stable_max_ibi_change_s``, ``stable_min_intervals`` and
    ``stable_max_std_s`` from ``p``.
    """
    ibis = intervals(beats)
    runs = stable_segments(ibis, float(p.stable_max_ibi_change_s), int(p.stable_min_intervals),
                           float(p.stable_max_std_s))
    covered = sum(float(ibis[a:b].sum()) for a, b in runs)
    return covered / float(duration_s)


def bpm_defined(beats: np.ndarray, duration_s: float, p: RhythmParams = RhythmParams()) -> tuple[int, str]:
    """Whether the beat grid gives a trustworthy tempo (1) or not (0), and why.

    1 when there are at least ``bpm_defined_min_beats`` beats, the tempo
    (60 / median IBI) lies in [``bpm_defined_min_bpm``, ``bpm_defined_max_bpm``],
    and either the IBI standard deviation is at most ``bpm_defined_max_ibi_std_s``
    or stable segments cover at least ``stable_min_coverage`` of the duration.

    Parameters
    ----------
    beats : np.ndarray
        Beat times in seconds.
    duration_s : float
        Duration of the analysed audio in seconds.
    p : RhythmParams, optional
        The rhythm parameters.

    Returns
    -------
    (int, str)
        The flag and the rule that decided it.
    """
    n = len(beats)
    need = int(p.bpm_defined_min_beats)
    if n < need:
        return 0, f"{n} beats < {need}"
    bpm = bpm_from_beats(beats)
    low, high = float(p.bpm_defined_min_bpm), float(p.bpm_defined_max_bpm)
    if bpm is None or not low <= bpm <= high:
        return 0, f"bpm {bpm} outside {low:g}-{high:g}"
    ibi_std = float(np.std(intervals(beats)))
    limit = float(p.bpm_defined_max_ibi_std_s)
    if ibi_std <= limit + _EPS:
        return 1, f"IBI std {ibi_std:.4f} s <= {limit:g} s"
    coverage = stable_coverage(beats, duration_s, p)
    min_cov = float(p.stable_min_coverage)
    if coverage >= min_cov - _EPS:
        return 1, f"IBI std {ibi_std:.4f} s > {limit:g} s but stable segments cover {coverage:.3f} >= {min_cov:g}"
    return 0, f"IBI std {ibi_std:.4f} s > {limit:g} s and stable segments cover {coverage:.3f} < {min_cov:g}"


def bar_length_mode(beat_positions: np.ndarray) -> int | None:
    """Most frequent number of beats per complete bar.

    Parameters
    ----------
    beat_positions : np.ndarray
        Position in the bar of each tracked beat (1 = downbeat), in time order.

    Returns
    -------
    int or None
        The most frequent distance (in beats) between consecutive downbeats
        (the smaller one on a tie); None when fewer than two downbeats exist.
    """
    pos = np.asarray(beat_positions).astype(int)
    downbeat_idx = np.nonzero(pos == 1)[0]
    if downbeat_idx.size < 2:
        return None
    lengths, counts = np.unique(np.diff(downbeat_idx), return_counts=True)
    return int(lengths[np.argmax(counts)])


def distance_to_nearest(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Absolute distance (s) from each of ``times`` to the nearest element of a non-empty sorted ``grid``."""
    times = np.asarray(times, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    if grid.size == 0:
        raise ValueError("distance_to_nearest needs a non-empty grid")
    idx = np.searchsorted(grid, times)
    left = grid[np.clip(idx - 1, 0, grid.size - 1)]
    right = grid[np.clip(idx, 0, grid.size - 1)]
    return np.minimum(np.abs(times - left), np.abs(times - right))


def on_beat_mask(onsets: np.ndarray, beats: np.ndarray, tolerance_s: float) -> np.ndarray:
    """True for each onset within ``tolerance_s`` (inclusive) of some beat."""
    return distance_to_nearest(onsets, beats) <= tolerance_s + _EPS


def on_beat_ratio(onsets: np.ndarray, beats: np.ndarray, tolerance_s: float) -> float:
    """Share (0-1) of onsets within ``tolerance_s`` of a beat; needs >= 1 onset and >= 1 beat."""
    return float(np.mean(on_beat_mask(onsets, beats, tolerance_s)))


def weighted_syncopation(onsets: np.ndarray, strengths: np.ndarray, beats: np.ndarray,
                         tolerance_s: float) -> float | None:
    """Strength-weighted off-beat share: sum of off-beat onset strengths / sum of all (0-1).

    An onset is off the beat when it is farther than ``tolerance_s`` from every
    beat. Returns None when the strengths sum to zero.
    """
    strengths = np.asarray(strengths, dtype=np.float64)
    total = float(strengths.sum())
    if total <= 0:
        return None
    off = ~on_beat_mask(onsets, beats, tolerance_s)
    return float(strengths[off].sum()) / total


def ioi_entropy_nats(iois: np.ndarray, bins: int) -> float:
    """Shannon entropy (nats) of a ``bins``-bin histogram of the inter-onset intervals.

    The histogram spans [min, max] of the IOIs (numpy's default), so the value
    measures how many different interval lengths occur, not their absolute size.
    Intervals that are all equal (to within 1 ns: onset times on a frame grid
    differ only by float rounding) fall into one bin, entropy 0; numpy cannot
    split such a range into ``bins`` finite bins.
    """
    iois = np.asarray(iois, dtype=np.float64)
    if iois.size == 0 or np.ptp(iois) < 1e-9:
        return 0.0
    counts, _ = np.histogram(iois, bins=bins)
    from scipy.stats import entropy  # lazy: the registry imports this module at workflow parse time

    return float(entropy(counts))


def coefficient_of_variation(iois: np.ndarray) -> float | None:
    """std / mean of the intervals (population std); None when the mean is 0."""
    iois = np.asarray(iois, dtype=np.float64)
    mean = float(iois.mean())
    if mean <= 0:
        return None
    return float(iois.std()) / mean


def rhythmic_complexity(iois: np.ndarray, bins: int) -> float | None:
    """(min(H/5, 1) + min(CV/2, 1)) / 2, 0-1; H = IOI histogram entropy (nats), CV = std/mean."""
    cv = coefficient_of_variation(iois)
    if cv is None:
        return None
    h = ioi_entropy_nats(iois, bins)
    return (min(h / 5.0, 1.0) + min(cv / 2.0, 1.0)) / 2.0


def rhythmic_evenness(iois: np.ndarray) -> float | None:
    """1 / (1 + CV) of the inter-onset intervals, 0-1 (1 = perfectly even)."""
    cv = coefficient_of_variation(iois)
    if cv is None:
        return None
    return 1.0 / (1.0 + cv)


def windowed_onset_densities(onsets: np.ndarray, duration_s: float, window_s: float,
                             hop_s: float) -> np.ndarray:
    """Onset density (onsets/s) in windows [k*hop, k*hop + window) that fit inside the duration.

    Parameters
    ----------
    onsets : np.ndarray
        Onset times in seconds.
    duration_s, window_s, hop_s : float
        Seconds. Windows start at 0, hop_s, 2*hop_s, ... while start + window
        <= duration; a shorter signal has no window (empty result).

    Returns
    -------
    np.ndarray
        Count of onsets in each window divided by ``window_s``.
    """
    n_windows = int(np.floor((duration_s - window_s) / hop_s + _EPS)) + 1 if duration_s + _EPS >= window_s else 0
    if n_windows <= 0:
        return np.zeros(0, dtype=np.float64)
    starts = np.arange(n_windows) * hop_s
    onsets = np.sort(np.asarray(onsets, dtype=np.float64))
    counts = np.searchsorted(onsets, starts + window_s, side="left") - np.searchsorted(onsets, starts, side="left")
    return counts / window_s


# --------------------------------------------------------------------------- feature assembly

def _ioi_features(result: FeatureResult, onsets: np.ndarray, p: RhythmParams, keys: tuple[str, ...]) -> None:
    """Set the IOI-based keys among ``keys`` (ioi_mean, ioi_std, rhythmic_complexity, rhythmic_evenness)."""
    iois = intervals(onsets)
    n = len(onsets)
    if "ioi_mean" in keys:
        if iois.size >= 1:
            result.set("ioi_mean", float(iois.mean()))
        else:
            result.mark_absent("ioi_mean", f"fewer than 2 onsets ({n})")
    shape_keys = [k for k in ("ioi_std", "rhythmic_complexity", "rhythmic_evenness") if k in keys]
    if iois.size < 2:
        result.mark_all_absent(shape_keys, f"fewer than 3 onsets ({n})")
        return
    if "ioi_std" in keys:
        result.set("ioi_std", float(iois.std()))
    complexity = rhythmic_complexity(iois, int(p.ioi_histogram_bins))
    evenness = rhythmic_evenness(iois)
    for key, value in (("rhythmic_complexity", complexity), ("rhythmic_evenness", evenness)):
        if key not in keys:
            continue
        if value is None:
            result.mark_absent(key, "onsets coincide (mean inter-onset interval 0)")
        else:
            result.set(key, value)


def full_mix_features(beats: np.ndarray, beat_positions: np.ndarray, onsets: np.ndarray,
                      onset_strengths: np.ndarray, duration_s: float,
                      p: RhythmParams = RhythmParams()) -> FeatureResult:
    """Every grid-derived full-mix key (all but ``bpm_madmom`` / ``bpm_essentia``).

    Parameters
    ----------
    beats : np.ndarray
        Beat times (s), ascending.
    beat_positions : np.ndarray
        Bar position (1 = downbeat) of each row of the downbeat tracker, in
        time order (its times need not equal ``beats``).
    onsets, onset_strengths : np.ndarray
        Onset times (s), ascending, and the detector activation at each.
    duration_s : float
        Duration of the audio in seconds (> 0).
    p : RhythmParams, optional
        The rhythm parameters.

    Returns
    -------
    FeatureResult
        Values, reasons for absent keys, and ``meta["bpm_is_defined_rule"]``.
    """
    r = FeatureResult()
    beats = np.asarray(beats, dtype=np.float64)
    onsets = np.asarray(onsets, dtype=np.float64)
    strengths = np.asarray(onset_strengths, dtype=np.float64)
    positions = np.asarray(beat_positions).astype(int)
    tol = float(p.beat_tolerance_s)

    r.set("beat_count", int(beats.size))
    bpm = bpm_from_beats(beats)
    if bpm is None:
        r.mark_absent("bpm", f"fewer than 2 beats ({beats.size})")
    else:
        r.set("bpm", bpm)
    if beats.size >= 3:
        r.set("beat_regularity", float(np.std(intervals(beats))))
    else:
        r.mark_absent("beat_regularity", f"fewer than 3 beats ({beats.size})")
    flag, rule = bpm_defined(beats, duration_s, p)
    r.set("bpm_is_defined", flag)
    r.meta["bpm_is_defined_rule"] = rule

    r.set("downbeat_count", int(np.count_nonzero(positions == 1)))
    bar_length = bar_length_mode(positions)
    if bar_length is None:
        r.mark_absent("beats_per_bar", "fewer than 2 downbeats, so no complete bar")
    else:
        r.set("beats_per_bar", bar_length)

    r.set("onset_count", int(onsets.size))
    r.set("onset_density", float(onsets.size) / float(duration_s))
    if onsets.size >= 1:
        r.set("onset_strength_mean", float(strengths.mean()))
    else:
        r.mark_absent("onset_strength_mean", "no onsets detected")
    if onsets.size >= 2:
        r.set("onset_strength_std", float(strengths.std()))
    else:
        r.mark_absent("onset_strength_std", f"fewer than 2 onsets ({onsets.size})")

    if onsets.size == 0 or beats.size == 0:
        reason = "no onsets detected" if onsets.size == 0 else "no beats detected"
        r.mark_absent("syncopation", reason)
        r.mark_absent("on_beat_ratio", reason)
    else:
        ratio = on_beat_ratio(onsets, beats, tol)
        r.set("on_beat_ratio", ratio)
        r.set("syncopation", 1.0 - ratio)
    _ioi_features(r, onsets, p, ("ioi_mean", "ioi_std", "rhythmic_complexity", "rhythmic_evenness"))
    return r


def stem_features(onsets: np.ndarray, onset_strengths: np.ndarray, beats: np.ndarray, duration_s: float,
                  p: RhythmParams = RhythmParams()) -> FeatureResult:
    """Per-stem keys (without suffix) from the stem's onsets and the full mix's beats.

    Parameters
    ----------
    onsets, onset_strengths : np.ndarray
        The stem's onset times (s) and detector activation at each.
    beats : np.ndarray
        The FULL-MIX beat times (s).
    duration_s : float
        Stem duration in seconds.
    p : RhythmParams, optional
        The rhythm parameters.

    Returns
    -------
    FeatureResult
    """
    r = FeatureResult()
    onsets = np.asarray(onsets, dtype=np.float64)
    beats = np.asarray(beats, dtype=np.float64)
    window, hop = float(p.stem_density_window_s), float(p.stem_density_hop_s)
    densities = windowed_onset_densities(onsets, duration_s, window, hop)
    if densities.size == 0:
        reason = f"too short: {duration_s:.2f} s < one {window:g} s window"
        r.mark_absent("onset_density_average", reason)
        r.mark_absent("onset_density_variance", reason)
    else:
        r.set("onset_density_average", float(densities.mean()))
        if densities.size >= 2:
            r.set("onset_density_variance", float(densities.var()))
        else:
            r.mark_absent("onset_density_variance", f"only one {window:g} s window fits in {duration_s:.2f} s")
    if onsets.size == 0:
        r.mark_absent("syncopation", "no onsets detected")
    elif beats.size == 0:
        r.mark_absent("syncopation", "no full-mix beats")
    else:
        value = weighted_syncopation(onsets, onset_strengths, beats, float(p.beat_tolerance_s))
        if value is None:
            r.mark_absent("syncopation", "onset strengths sum to zero")
        else:
            r.set("syncopation", value)
    _ioi_features(r, onsets, p, ("rhythmic_complexity", "rhythmic_evenness"))
    return r


# --------------------------------------------------------------------------- analysis entry points

def rms_dbfs(mono: np.ndarray) -> float:
    """RMS level of a mono signal in dBFS (-inf for digital silence)."""
    power = float(np.mean(np.square(mono, dtype=np.float64))) if mono.size else 0.0
    return 10.0 * np.log10(power) if power > 0 else -np.inf


def beat_evidence(beats: np.ndarray, activation: np.ndarray, fps: int) -> tuple[float, float | None]:
    """How strongly a beat activation supports a decoded beat grid.

    Parameters
    ----------
    beats : np.ndarray
        Decoded beat times in seconds (non-empty).
    activation : np.ndarray
        Beat probability per frame (0-1) at ``fps`` frames per second.
    fps : int
        Frames per second of ``activation``.

    Returns
    -------
    support : float
        Median activation at the beat frames (0-1).
    contrast : float or None
        ``support`` divided by the median, over consecutive beat pairs, of the
        largest activation within +-3 frames of their midpoint (the off-beat);
        off-beat values below 0.001 count as 0.001. None for a single beat.

    Notes
    -----
    Measured (downbeat_dbn grid): music has support 0.17-0.95 and contrast
    4-700, except dense double-kick metal (support 0.60, contrast 1.3);
    white/pink noise has support 0.06/0.12 and contrast 1.5/2.0; drones and
    sustained pads have support near 0.01. Hence the two-part rejection rule
    in ``analyse_rhythm``.
    """
    activation = np.asarray(activation, dtype=np.float64)
    last = activation.size - 1
    frames = np.clip(np.round(np.asarray(beats) * fps).astype(int), 0, last)
    support = float(np.median(activation[frames]))
    if frames.size < 2:
        return support, None
    mids = np.clip(np.round((frames[:-1] + frames[1:]) / 2.0).astype(int), 0, last)
    offsets = np.arange(-3, 4)
    around = activation[np.clip(mids[:, None] + offsets[None, :], 0, last)].max(axis=1)
    return support, support / max(float(np.median(around)), 1e-3)


def _silence_reason(signal: AudioSignal, p: RhythmParams, label: str) -> str | None:
    """Why ``signal`` is not analysed (silent or too short), or None."""
    if signal.is_digital_silence():
        return f"{label} (digital silence)"
    level = rms_dbfs(signal.mono())
    limit = float(p.silence_rms_dbfs)
    if level < limit:
        return f"{label} (RMS {level:.1f} dBFS < {limit:g} dBFS)"
    return None


def analyse_rhythm(signal: AudioSignal,
                   params: RhythmParams = RhythmParams()) -> tuple[FeatureResult, RhythmGrids]:
    """Beats, downbeats, onsets and the full-mix rhythm features of one track.

    Parameters
    ----------
    signal : AudioSignal
        The full mix at its native rate and channel layout (downmixed to mono here).
    params : RhythmParams, optional
        The rhythm parameters.

    Returns
    -------
    result : FeatureResult
        The ``rhythm`` family's keys (see ``FULL_MIX_KEYS``); ``meta`` holds the
        parameters used, how activations were shared, the madmom input rate,
        library versions, ``bpm_is_defined_rule`` and, for empty grids,
        ``empty_grids`` with the reason per grid.
    grids : RhythmGrids
        Beat, downbeat and onset times (s) and onset strengths.
    """
    p = params
    result = FeatureResult()
    result.meta.update({"params": as_dict(p), "versions": det.package_versions(),
                        "input_sample_rate": signal.sample_rate, "duration_s": signal.duration_s})
    duration = signal.duration_s
    skip = _silence_reason(signal, p, "silent signal")
    if skip is None and duration < float(p.min_duration_s):
        skip = f"too short ({duration:.3f} s < {float(p.min_duration_s):g} s)"
    if skip is not None:
        result.mark_all_absent(FULL_MIX_KEYS, skip)
        result.meta["empty_grids"] = dict.fromkeys(("beats", "downbeats", "onsets"), skip)
        return result, RhythmGrids.empty()

    samples, note = det.resample_for_madmom(signal.mono(), signal.sample_rate)
    result.meta["madmom_input"] = f"mono downmix, {note}"
    detections = det.track_beats_and_downbeats(samples, p)
    result.meta["beat_method"] = p.beat_method
    result.meta["activations"] = detections.activation_note
    result.meta["threads"] = "madmom num_threads=1, onnxruntime intra_op_num_threads=1"

    beats = detections.beats
    rows = detections.downbeat_rows
    empty: dict[str, str] = {}
    if beats.size:
        # The DBN decodes a regular beat sequence even where the network saw no beats (a drone,
        # noise), so a grid the activation does not support is rejected rather than passed on.
        support, contrast = beat_evidence(beats, detections.beat_activation, int(p.fps))
        result.meta["median_beat_activation"] = support
        result.meta["beat_contrast"] = contrast
        reason = None
        if support < float(p.min_median_beat_activation):
            reason = (f"no beats detected: median beat activation at the {beats.size} decoded beats is "
                      f"{support:.3f} < {float(p.min_median_beat_activation):g} (no rhythmic evidence)")
        elif (support < float(p.weak_beat_activation) and contrast is not None
              and contrast < float(p.min_beat_contrast)):
            reason = (f"no beats detected: median beat activation {support:.3f} < "
                      f"{float(p.weak_beat_activation):g} and the {beats.size} decoded beats stand out only "
                      f"{contrast:.2f}x from the off-beats (< {float(p.min_beat_contrast):g}; noise-like input)")
        if reason is not None:
            empty["beats"] = empty["downbeats"] = reason
            beats = np.zeros(0)
            rows = np.zeros((0, 2))
    else:
        empty["beats"] = "no beats detected: the beat activation never reached the decoding threshold"
    positions = rows[:, 1].astype(int) if rows.size else np.zeros(0, dtype=int)
    downbeats = rows[positions == 1, 0] if rows.size else np.zeros(0)
    if downbeats.size == 0 and "downbeats" not in empty:
        empty["downbeats"] = ("no downbeats detected" if rows.size
                              else "no downbeats detected: the downbeat tracker returned no beats")

    onsets, strengths = det.madmom_onsets(samples, p)
    result.meta["onset_detector"] = "madmom CNNOnsetProcessor + CNNOnsetDetector peak picking, 44.1 kHz mono"
    if onsets.size == 0:
        empty["onsets"] = "no onsets detected"

    features = full_mix_features(beats, positions, onsets, strengths, duration, p)
    result.update(features)
    result.meta.update(features.meta)

    bpm_madmom = det.madmom_tempo_bpm(detections.beat_activation, p)
    bpm_essentia, essentia_reason, essentia_confidence = det.essentia_tempo_bpm(samples, p)
    result.meta["essentia_confidence"] = essentia_confidence
    if "beats" in empty:
        # Both estimators always name some tempo (Essentia: 143 BPM for a drone, 89 BPM for noise);
        # without beat evidence that number would be conditioning data describing nothing.
        reason = f"no rhythm: {empty['beats']}"
        result.mark_absent("bpm_madmom", reason)
        result.mark_absent("bpm_essentia", reason)
        result.meta["unused_tempo_estimates"] = {"bpm_madmom": bpm_madmom, "bpm_essentia": bpm_essentia}
    else:
        if bpm_madmom is None:
            result.mark_absent("bpm_madmom", "madmom TempoEstimationProcessor found no tempo")
        else:
            result.set("bpm_madmom", bpm_madmom)
        if bpm_essentia is None:
            result.mark_absent("bpm_essentia", essentia_reason)
        else:
            result.set("bpm_essentia", bpm_essentia)

    if empty:
        result.meta["empty_grids"] = empty
    grids = RhythmGrids(beats=np.asarray(beats, dtype=np.float64), downbeats=np.asarray(downbeats, dtype=np.float64),
                        onsets=np.asarray(onsets, dtype=np.float64),
                        onset_strengths=np.asarray(strengths, dtype=np.float64))
    return result, grids


def analyse_stem_rhythm(stem: AudioSignal, beats: np.ndarray, params: RhythmParams,
                        stem_name: str) -> FeatureResult:
    """Per-stem rhythm keys (WITHOUT the ``_<stem>`` suffix; the caller appends it).

    Parameters
    ----------
    stem : AudioSignal
        One separated stem.
    beats : np.ndarray
        The full mix's beat times in seconds (may be empty).
    params : RhythmParams, optional
        The rhythm parameters.
    stem_name : str
        "bass", "drums", "other" or "vocals" (recorded in meta).

    Returns
    -------
    FeatureResult
        ``STEM_KEYS``; a silent stem gives every key absent with reason "silent stem".
    """
    p = params
    result = FeatureResult()
    result.meta.update({"stem": stem_name, "params": as_dict(p), "versions": det.package_versions(),
                        "input_sample_rate": stem.sample_rate, "duration_s": stem.duration_s})
    detail = _silence_reason(stem, p, "silent stem")
    if detail is not None:
        result.mark_all_absent(STEM_KEYS, "silent stem")
        result.meta["silence"] = detail
        return result
    if stem.duration_s < float(p.min_duration_s):
        reason = f"too short ({stem.duration_s:.3f} s < {float(p.min_duration_s):g} s)"
        result.mark_all_absent(STEM_KEYS, reason)
        return result
    samples, note = det.resample_for_madmom(stem.mono(), stem.sample_rate)
    result.meta["madmom_input"] = f"mono downmix, {note}"
    onsets, strengths = det.madmom_onsets(samples, p)
    result.meta["onset_detector"] = "madmom CNNOnsetProcessor + CNNOnsetDetector peak picking, 44.1 kHz mono"
    result.meta["onset_count"] = int(onsets.size)
    result.meta["beats_from"] = "full mix"
    result.update(stem_features(onsets, strengths, np.asarray(beats, dtype=np.float64), stem.duration_s, p))
    return result


# The job code reading and writing the grids lives in mirflow.families (context families).
FAMILIES = (
    Family("rhythm", 1, "mix", "rhythm", "mirflow.families:rhythm_family", ("madmom", "essentia", "numpy"),
           "Beat, downbeat and onset grids (.BEATS_GRID, .DOWNBEATS, .ONSETS) and rhythm features",
           kind="context", outputs=(("beats", "{name}.BEATS_GRID"), ("downbeats", "{name}.DOWNBEATS"),
                                    ("onsets", "{name}.ONSETS")), params=RhythmParams),
    Family("rhythm_stems", 1, "stems", "rhythm", "mirflow.families:rhythm_stems_family", ("madmom", "numpy"),
           "Per-stem onset density, syncopation, complexity and evenness", kind="context", needs=("beats",),
           params=RhythmParams),
)
