"""Classic Essentia descriptors of the full mix: danceability, atonality,
saturation (clipping), dynamic complexity and EBU R128 momentary/short-term maxima.

* ``danceability_dfa``: Essentia ``Danceability`` (detrended fluctuation
  analysis, Streich & Herrera 2005; minTau 310 ms, maxTau 8800 ms,
  tauMultiplier 1.1) on the mono downmix. Essentia's native scale: "normal
  values range from 0 to ~3, the higher, the more danceable"; strictly periodic
  signals go far above (a steady drum loop scores ~5, a pure sine hundreds).
  Written unscaled; the merge derives ``danceability`` from it (divided by 3)
  only when no model head gives one (:mod:`mirflow.resolved`).
* ``atonality_key_profile``: 1 - key strength of Essentia ``KeyExtractor`` with
  its defaults (profile 'bgate', HPCP 12 bins, frame/hop 4096 at the signal's
  rate) on the mono downmix: the old tool's documented fallback, and the
  source of ``atonality`` when no tonal/atonal model head is installed.
* ``saturation_ratio`` / ``saturation_count``: the old tool's clipping
  detector (old-system.md section 1.4): non-overlapping 256-sample frames; a
  frame is clipped when its peak |x| over all channels reaches 0.95 of full
  scale; runs of clipped frames separated by gaps <= 20 ms are merged into one
  event; events shorter than 10 ms are dropped. Durations are whole frames
  (5.8 ms at 44.1 kHz), so a clipped region is measured by the frames it
  touches. ratio = total event duration / signal duration. Unlike the old tool
  (mono downmix), the peak is taken over channels, so one clipped channel is
  not hidden by a quieter one.
* ``dynamic_complexity``: Essentia ``DynamicComplexity`` (frameSize 0.2 s):
  mean absolute deviation of the frame loudness from the track's global
  loudness estimate, in dB.
* ``loudness_momentary_max`` / ``loudness_shortterm_max``: maxima of Essentia
  ``LoudnessEBUR128`` momentary (400 ms) and short-term (3 s) loudness, hop
  0.1 s, in LUFS. Mono is measured as one channel (BS.1770 weights), stereo as
  L/R.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..audio import AudioSignal
from ..params import param, section
from ..result import FeatureResult
from . import Family
from .harmony import KEY_PROFILES

KEYS = ("danceability_dfa", "atonality_key_profile", "saturation_ratio", "saturation_count", "dynamic_complexity",
        "loudness_momentary_max", "loudness_shortterm_max")



@dataclass(frozen=True)
class SaturationParams:
    """The clipping detector (``descriptors.saturation``): old-system.md section 1.4."""

    frame_length: int = param(256, unit="samples", minimum=1, doc="Non-overlapping frame length")
    threshold: float = param(0.95, above=0.0, maximum=1.0, doc="A frame whose peak |x| reaches this share of full "
                                                                "scale is clipped")
    merge_gap_s: float = param(0.02, unit="s", minimum=0.0, doc="Clipped runs this close merge into one event")
    min_event_s: float = param(0.01, unit="s", minimum=0.0, doc="Shorter events are dropped")


@dataclass(frozen=True)
class DanceabilityParams:
    """Essentia ``Danceability`` (DFA) scales (``descriptors.danceability``)."""

    min_tau_ms: float = param(310.0, unit="ms", above=0.0, doc="Shortest DFA segment (minTau)")
    max_tau_ms: float = param(8800.0, unit="ms", above=0.0, doc="Longest DFA segment (maxTau)")
    tau_multiplier: float = param(1.1, above=1.0, doc="Ratio between consecutive segment lengths (tauMultiplier)")


@dataclass(frozen=True)
class DescriptorsParams:
    """Parameters of ``descriptors`` (config section ``descriptors``)."""

    silence_rms_dbfs: float = param(-70.0, unit="dBFS",
                                    doc="At or below this whole-signal RMS the level-based descriptors are silent")
    saturation: SaturationParams = section(SaturationParams(), doc="Clipping detector")
    danceability: DanceabilityParams = section(DanceabilityParams(), doc="DFA danceability")
    # The DFA needs segments up to max_tau_ms.
    danceability_min_duration_s: float = param(8.8, unit="s", minimum=0.0, doc="Shorter input: danceability absent")
    key_profile: str = param("bgate", choices=(*KEY_PROFILES, "faraldo", "pentatonic"),
                             doc="Essentia KeyExtractor profile of the atonality")
    atonality_min_duration_s: float = param(1.0, unit="s", minimum=0.0, doc="Shorter input: atonality absent")
    dynamic_complexity_frame_s: float = param(0.2, unit="s", above=0.0, doc="DynamicComplexity frame length")
    dynamic_complexity_min_duration_s: float = param(1.0, unit="s", minimum=0.0,
                                                     doc="Shorter input: dynamic_complexity absent")
    loudness_gate_lufs: float = param(-70.0, unit="LUFS", doc="Loudness maxima below this count as silence")


def _essentia_standard():
    import essentia

    essentia.log.infoActive = False
    essentia.log.warningActive = False
    import essentia.standard as es

    return es


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level in dBFS (full scale 1.0) over all samples; -inf for all zeros."""
    power = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10.0 * math.log10(power) if power > 0 else -math.inf


# ---------------------------------------------------------------- saturation

def clipped_frames(samples: np.ndarray, frame_length: int = 256, threshold: float = 0.95) -> np.ndarray:
    """Which non-overlapping frames reach ``threshold`` of full scale.

    Parameters
    ----------
    samples : np.ndarray
        (channels, frames) or (frames,), full scale 1.0.
    frame_length : int
        Samples per frame; the last frame may be shorter.
    threshold : float
        Peak |x| (linear, 0.95 = -0.45 dBFS) at or above which a frame is clipped.

    Returns
    -------
    np.ndarray
        bool, one entry per frame.
    """
    peak = np.max(np.abs(np.atleast_2d(samples)), axis=0)
    n_frames = -(-len(peak) // frame_length)
    padded = np.zeros(n_frames * frame_length, dtype=peak.dtype)
    padded[: len(peak)] = peak
    return padded.reshape(n_frames, frame_length).max(axis=1) >= threshold


def frame_runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in ``flags`` as half-open (start, stop) frame index pairs."""
    edges = np.diff(np.concatenate(([0], flags.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def saturation_events(samples: np.ndarray, sample_rate: int, frame_length: int = 256, threshold: float = 0.95,
                      merge_gap_s: float = 0.020, min_event_s: float = 0.010) -> list[tuple[float, float]]:
    """Clipping events as (start_s, end_s), after merging and dropping short ones.

    Parameters
    ----------
    samples : np.ndarray
        (channels, frames) or (frames,), full scale 1.0.
    sample_rate : int
        Hz.
    frame_length, threshold
        See :func:`clipped_frames`.
    merge_gap_s : float
        Runs separated by at most this many seconds of unclipped frames merge.
    min_event_s : float
        Merged events shorter than this (seconds) are dropped.

    Returns
    -------
    list of (float, float)
        Event boundaries in seconds, on frame boundaries (the end is clipped to
        the signal's duration).
    """
    total = np.atleast_2d(samples).shape[1]
    runs = frame_runs(clipped_frames(samples, frame_length, threshold))
    merged: list[list[int]] = []
    for start, stop in runs:
        gap_s = (start - merged[-1][1]) * frame_length / sample_rate if merged else math.inf
        if gap_s <= merge_gap_s + 1e-12:
            merged[-1][1] = stop
        else:
            merged.append([start, stop])
    events = []
    for start, stop in merged:
        start_s = start * frame_length / sample_rate
        end_s = min(stop * frame_length, total) / sample_rate
        if end_s - start_s >= min_event_s - 1e-12:
            events.append((start_s, end_s))
    return events


# ---------------------------------------------------------------- Essentia wrappers

def danceability(mono: np.ndarray, sample_rate: int, min_tau_ms: float = 310.0, max_tau_ms: float = 8800.0,
                 tau_multiplier: float = 1.1) -> float:
    """Essentia ``Danceability`` (DFA) of a mono signal; native scale 0 to ~3."""
    es = _essentia_standard()
    algorithm = es.Danceability(sampleRate=float(sample_rate), minTau=float(min_tau_ms),
                                maxTau=float(max_tau_ms), tauMultiplier=float(tau_multiplier))
    value, _dfa = algorithm(np.ascontiguousarray(mono, dtype=np.float32))
    return float(value)


def key_strength(mono: np.ndarray, sample_rate: int, profile: str = "bgate") -> tuple[str, str, float]:
    """Essentia ``KeyExtractor`` (defaults, given profile): (key, scale, strength)."""
    es = _essentia_standard()
    key, scale, strength = es.KeyExtractor(sampleRate=float(sample_rate), profileType=profile)(
        np.ascontiguousarray(mono, dtype=np.float32))
    return str(key), str(scale), float(strength)


def dynamic_complexity(mono: np.ndarray, sample_rate: int, frame_s: float = 0.2) -> tuple[float, float]:
    """Essentia ``DynamicComplexity``: (complexity in dB, global loudness estimate in dB)."""
    es = _essentia_standard()
    complexity, loudness = es.DynamicComplexity(sampleRate=float(sample_rate), frameSize=float(frame_s))(
        np.ascontiguousarray(mono, dtype=np.float32))
    return float(complexity), float(loudness)


def ebur128_maxima(samples: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """Max momentary and max short-term loudness (LUFS) with Essentia ``LoudnessEBUR128``.

    Parameters
    ----------
    samples : np.ndarray
        (1 or 2, frames). Mono is fed as (x, 0) so it is weighted as one
        channel.
    """
    es = _essentia_standard()
    samples = np.atleast_2d(samples)
    if samples.shape[0] == 1:
        stereo = np.stack([samples[0], np.zeros_like(samples[0])], axis=1)
    elif samples.shape[0] == 2:
        stereo = samples.T
    else:
        raise ValueError(f"LoudnessEBUR128 takes mono or stereo, got {samples.shape[0]} channels")
    momentary, shortterm, _integrated, _lra = es.LoudnessEBUR128(sampleRate=float(sample_rate), hopSize=0.1)(
        np.ascontiguousarray(stereo, dtype=np.float32))
    return float(np.max(momentary)), float(np.max(shortterm))


# ---------------------------------------------------------------- entry point

def compute_descriptors(signal: AudioSignal, params: DescriptorsParams = DescriptorsParams()) -> FeatureResult:
    """Classic Essentia descriptors of one signal (family ``descriptors``).

    Parameters
    ----------
    signal : AudioSignal
        The full mix.
    params : DescriptorsParams, optional
        Gates, minimum durations and the settings of each descriptor.

    Returns
    -------
    FeatureResult
        Keys :data:`KEYS`. Saturation is measured on any signal (silence has
        0 events). The other keys are absent with reason "silent" when the
        RMS is at or below ``silence_rms_dbfs``, or "too short" below their
        minimum duration. ``meta`` names the method and parameters of each.
    """
    p = params
    sat = p.saturation
    dance = p.danceability
    result = FeatureResult()
    result.meta.update({
        "danceability_dfa_method": {"library": "essentia Danceability (DFA)", "minTau_ms": dance.min_tau_ms,
                                    "maxTau_ms": dance.max_tau_ms, "tauMultiplier": dance.tau_multiplier,
                                    "input": "mono downmix", "scale": "Essentia native, normally 0 to ~3"},
        "atonality_key_profile_method": {"library": "essentia KeyExtractor", "profileType": p.key_profile,
                                         "definition": "1 - key strength", "input": "mono downmix"},
        "saturation_method": {"frame_length": sat.frame_length, "threshold": sat.threshold,
                              "merge_gap_s": sat.merge_gap_s, "min_event_s": sat.min_event_s,
                              "peak": "max |x| over channels"},
        "dynamic_complexity_method": {"library": "essentia DynamicComplexity",
                                      "frameSize_s": p.dynamic_complexity_frame_s},
        "loudness_method": {"library": "essentia LoudnessEBUR128", "hopSize_s": 0.1,
                            "mono": "measured as one channel"},
    })
    samples = signal.samples
    sample_rate = signal.sample_rate
    duration = signal.duration_s

    events = saturation_events(samples, sample_rate, int(sat.frame_length), float(sat.threshold),
                               float(sat.merge_gap_s), float(sat.min_event_s))
    result.set("saturation_count", len(events))
    result.set("saturation_ratio", float(sum(end - start for start, end in events) / duration))

    mono = signal.mono()
    level = rms_dbfs(mono)
    result.meta["rms_dbfs"] = level if math.isfinite(level) else None
    if not level > p.silence_rms_dbfs:
        for key in ("danceability_dfa", "atonality_key_profile", "dynamic_complexity", "loudness_momentary_max",
                    "loudness_shortterm_max"):
            result.mark_absent(key, "silent")
        return result

    if duration < p.danceability_min_duration_s:
        result.mark_absent("danceability_dfa", f"too short ({duration:.2f} s < {p.danceability_min_duration_s} s)")
    else:
        result.set("danceability_dfa", danceability(mono, sample_rate, dance.min_tau_ms, dance.max_tau_ms,
                                                 dance.tau_multiplier))

    if duration < p.atonality_min_duration_s:
        result.mark_absent("atonality_key_profile", f"too short ({duration:.2f} s < {p.atonality_min_duration_s} s)")
    else:
        key, scale, strength = key_strength(mono, sample_rate, p.key_profile)
        result.set("atonality_key_profile", 1.0 - strength)
        result.meta["atonality_key_profile_key"] = f"{key} {scale}"

    if duration < p.dynamic_complexity_min_duration_s:
        result.mark_absent("dynamic_complexity",
                           f"too short ({duration:.2f} s < {p.dynamic_complexity_min_duration_s} s)")
    else:
        complexity, _loudness = dynamic_complexity(mono, sample_rate, p.dynamic_complexity_frame_s)
        result.set("dynamic_complexity", complexity)

    if signal.channels > 2:
        result.mark_all_absent(
            ("loudness_momentary_max", "loudness_shortterm_max"),
            f"{signal.channels} channels: LoudnessEBUR128 measures mono or stereo only",
        )
        return result
    momentary, shortterm = ebur128_maxima(samples, sample_rate)
    gate = p.loudness_gate_lufs
    for key, value, window_s in (("loudness_momentary_max", momentary, 0.4),
                                 ("loudness_shortterm_max", shortterm, 3.0)):
        if duration < window_s:
            result.mark_absent(key, f"too short ({duration:.2f} s < the {window_s} s window)")
        elif not value >= gate:
            result.mark_absent(key, f"silent (below the {gate} LUFS absolute gate)")
        else:
            result.set(key, value)
    return result


# Version 2: danceability/atonality renamed danceability_dfa/atonality_key_profile (sources of the
# resolved keys, mirflow.resolved).
FAMILY = Family("descriptors", 2, "mix", "descriptors", "mirflow.features.descriptors:compute_descriptors",
                ("essentia", "numpy"), "Classic Essentia descriptors: DFA danceability, key-profile atonality, "
                "saturation, dynamic complexity", params=DescriptorsParams)
