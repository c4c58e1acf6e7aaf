"""Drum transcription with ADTOF Frame_RNN: hits, ``drums_adtof.mid`` and the ``drums`` features.

Typical use (one model load per process, many tracks)::

    from mirflow.transcription import adtof, drums
    model = adtof.load_model(weights_path, device="auto")
    result = drums.compute_drums(model, signal, params, input_name="drums",
                                 midi_path="drums_adtof.mid", beats=beat_times)

Peak picking follows the original ADTOF exactly: madmom's
``NotePeakPickingProcessor(threshold=t, smooth=0, pre_avg=0.1, post_avg=0.01,
pre_max=0.02, post_max=0.01, combine=0.02, fps=100)`` run on each class's
activation separately, with the per-class thresholds fitted by ADTOF on its
validation data (0.22, 0.24, 0.32, 0.22, 0.30 for BD, SD, TT, HH, CY+RD).

The ADTOF-PyTorch port (xavriley/ADTOF-pytorch, whose ``test.mid`` is our
reference clip) deviates from the original in three places: its filterbank is
spaced from exactly 20 Hz instead of madmom's A440-aligned grid, its frequency
max-pooling pads with zeros instead of TensorFlow's ignored padding, and its
peak picking repeats edge values instead of zero-padding. With those three
switched on (``adtof.port_filterbank``, ``load_model(pool_padding="zeros")``,
``pick_peaks_port``) this implementation reproduces ``test.mid`` hit for hit;
with the original's processing (the default) it agrees at F = 97.5 % and scores
F = 91.6 % on the 13 MDB Drums drum-only recordings (port emulation: 91.4 %).
See ``benchmarks/drum_transcription_accuracy.py``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..audio import AudioSignal
from ..jsonio import write_bytes_atomic
from ..params import DEVICE_PATTERN, as_dict, param, section
from ..result import FeatureResult
from . import adtof
from .midi import DEFAULT_TICKS_PER_QUARTER, MidiNote, midi_file_bytes, tempo_map


@dataclass(frozen=True)
class DrumClass:
    """One output class of ADTOF Frame_RNN.

    Attributes
    ----------
    name : str
        Name used in feature keys (``drum_hits_<name>``).
    label : str
        ADTOF's label (BD, SD, TT, HH, CY+RD).
    midi_note : int
        General MIDI percussion note written to the MIDI file.
    threshold : float
        ADTOF's reference peak-picking threshold for this class.
    """

    name: str
    label: str
    midi_note: int
    threshold: float


#: Model output order. MIDI notes are the ones ADTOF writes (GM: 35 Acoustic Bass
#: Drum, 38 Acoustic Snare, 47 Low-Mid Tom, 42 Closed Hi-Hat, 49 Crash Cymbal 1).
DRUM_CLASSES: tuple[DrumClass, ...] = (
    DrumClass("kick", "BD", 35, 0.22),
    DrumClass("snare", "SD", 38, 0.24),
    DrumClass("toms", "TT", 47, 0.32),
    DrumClass("hihat", "HH", 42, 0.22),
    DrumClass("cymbals", "CY+RD", 49, 0.30),
)
CLASS_NAMES = tuple(c.name for c in DRUM_CLASSES)
#: MIDI channel index of General MIDI percussion ("channel 10").
DRUM_CHANNEL = 9

_REFERENCE = {c.name: c.threshold for c in DRUM_CLASSES}


@dataclass(frozen=True)
class DrumThresholds:
    """Peak-picking threshold per drum class (ADTOF's values fitted on its validation data)."""

    kick: float = param(_REFERENCE["kick"], above=0.0, maximum=1.0, doc="Bass drum (BD) activation threshold")
    snare: float = param(_REFERENCE["snare"], above=0.0, maximum=1.0, doc="Snare (SD) activation threshold")
    toms: float = param(_REFERENCE["toms"], above=0.0, maximum=1.0, doc="Toms (TT) activation threshold")
    hihat: float = param(_REFERENCE["hihat"], above=0.0, maximum=1.0, doc="Hi-hat (HH) activation threshold")
    cymbals: float = param(_REFERENCE["cymbals"], above=0.0, maximum=1.0,
                           doc="Crash and ride cymbals (CY+RD) activation threshold")


@dataclass(frozen=True)
class DrumsParams:
    """Parameters of ``drums`` (config section ``drums``): madmom NotePeakPickingProcessor's, in seconds
    (converted to frames at 100 fps with round()), and the MIDI notes written."""

    device: str = param("auto", pattern=DEVICE_PATTERN,
                        doc="Torch device: auto (a CUDA/ROCm GPU when torch sees one, else CPU), cpu, cuda, cuda:N")
    thresholds: DrumThresholds = section(DrumThresholds(), doc="Peak-picking threshold per class")
    pre_avg_s: float = param(0.1, unit="s", minimum=0.0, doc="Moving-average window before a frame")
    post_avg_s: float = param(0.01, unit="s", minimum=0.0, doc="Moving-average window after a frame")
    pre_max_s: float = param(0.02, unit="s", minimum=0.0, doc="Local-maximum window before a frame")
    post_max_s: float = param(0.01, unit="s", minimum=0.0, doc="Local-maximum window after a frame")
    combine_s: float = param(0.02, unit="s", minimum=0.0, doc="Onsets closer than this are combined into one")
    note_duration_s: float = param(0.1, unit="s", above=0.0, doc="Length of each MIDI note (as ADTOF writes)")
    velocity: int = param(100, minimum=1, maximum=127, doc="MIDI velocity of every note")


KEYS = tuple(f"drum_hits_{n}" for n in CLASS_NAMES) + ("drum_hits_total",) + \
    tuple(f"drum_density_{n}" for n in CLASS_NAMES) + ("drum_density_total",)


# --------------------------------------------------------------------------
# Peak picking
# --------------------------------------------------------------------------

def pick_peaks(activation: np.ndarray, threshold: float, fps: float = adtof.FPS, pre_avg_s: float = 0.1,
               post_avg_s: float = 0.01, pre_max_s: float = 0.02, post_max_s: float = 0.01,
               combine_s: float = 0.02) -> np.ndarray:
    """Onset times from one activation function, as madmom's NotePeakPickingProcessor.

    A frame ``i`` is an onset when

    1. ``act[i] >= mean(act[i - pre_avg : i + post_avg]) + threshold`` (moving
       average over ``pre_avg + post_avg + 1`` frames, zeros beyond the ends),
    2. ``act[i]`` is the maximum of those thresholded values over frames
       ``i - pre_max .. i + post_max``, and is non-zero;

    then onsets at most ``combine_s`` after the previous kept onset are dropped
    (the earlier one is kept; madmom's ``combine_events(..., "left")``, which
    adds 1e-12 s to ``combine_s`` against rounding). Window lengths in frames
    are ``round(seconds * fps)``.

    Parameters
    ----------
    activation : np.ndarray
        Shape (frames,), values in [0, 1], ``fps`` frames per second.
    threshold : float
        Minimum height above the moving average.
    fps : float
        Frames per second.
    pre_avg_s, post_avg_s, pre_max_s, post_max_s, combine_s : float
        Seconds.

    Returns
    -------
    np.ndarray
        Onset times in seconds (frame index / fps), increasing, float64.
    """
    act = np.asarray(activation, dtype=np.float32).reshape(-1)
    if act.size == 0:
        return np.zeros(0)
    pre_avg, post_avg, pre_max, post_max = (int(round(s * fps)) for s in (pre_avg_s, post_avg_s, pre_max_s, post_max_s))
    avg_len = pre_avg + post_avg + 1
    if avg_len > 1:
        from scipy.ndimage import uniform_filter1d  # lazy: the registry imports this module at parse time

        mov_avg = uniform_filter1d(act, avg_len, mode="constant", origin=int(np.floor((pre_avg - post_avg) / 2)))
    else:
        mov_avg = np.zeros_like(act)
    detections = act * (act >= mov_avg + threshold)
    max_len = pre_max + post_max + 1
    if max_len > 1:
        from scipy.ndimage import maximum_filter1d

        mov_max = maximum_filter1d(detections, max_len, mode="constant",
                                   origin=int(np.floor((pre_max - post_max) / 2)))
        detections = detections * (detections == mov_max)
    times = np.nonzero(detections)[0].astype(np.float64) / fps
    if combine_s > 0 and times.size > 1:
        kept = [times[0]]
        for t in times[1:]:
            if t - kept[-1] > combine_s + 1e-12:
                kept.append(t)
        times = np.asarray(kept)
    return times


def pick_peaks_port(activation: np.ndarray, threshold: float, fps: float = adtof.FPS, pre_avg_s: float = 0.1,
                    post_avg_s: float = 0.01, pre_max_s: float = 0.02, post_max_s: float = 0.01,
                    combine_s: float = 0.02) -> np.ndarray:
    """Onset times as the ADTOF-PyTorch port picks them (for comparisons only).

    Differs from ``pick_peaks`` (madmom, the original) in three ways: the moving
    average and the moving maximum repeat the edge values instead of padding
    with zeros (so a track that starts mid-sound yields no onset at 0.01 s); the
    threshold and the maximum apply to ``max(0, act - average)``; and peaks
    within ``combine_s`` of each other form chained groups of which the
    strongest is kept.

    Returns
    -------
    np.ndarray
        Onset times in seconds, increasing.
    """
    act = np.asarray(activation, dtype=np.float32).reshape(-1)
    if act.size == 0:
        return np.zeros(0)
    pre_avg, post_avg, pre_max, post_max, combine = (
        int(round(s * fps)) for s in (pre_avg_s, post_avg_s, pre_max_s, post_max_s, combine_s))
    avg_len = pre_avg + post_avg + 1
    from scipy.ndimage import maximum_filter1d, uniform_filter1d

    avg = uniform_filter1d(act, avg_len, mode="nearest", origin=int(np.floor((pre_avg - post_avg) / 2)))
    strength = np.maximum(0.0, act - avg)
    max_len = pre_max + post_max + 1
    local_max = maximum_filter1d(strength, max_len, mode="nearest", origin=int(np.floor((pre_max - post_max) / 2)))
    frames = np.nonzero((strength >= local_max) & (strength >= threshold))[0]
    if frames.size == 0:
        return np.zeros(0)
    kept, group = [], [int(frames[0])]
    for f in frames[1:]:
        if f - group[-1] <= max(1, combine):
            group.append(int(f))
        else:
            kept.append(max(group, key=lambda i: strength[i]))
            group = [int(f)]
    kept.append(max(group, key=lambda i: strength[i]))
    return np.asarray(kept, dtype=np.float64) / fps


# --------------------------------------------------------------------------
# Transcription
# --------------------------------------------------------------------------

@dataclass
class DrumTranscription:
    """Drum hits of one signal.

    Attributes
    ----------
    hits : dict
        Class name (``CLASS_NAMES``) -> onset times in seconds, increasing.
    duration_s : float
        Duration of the analysed signal in seconds.
    activations : np.ndarray
        float32 (frames, 5) at 100 fps, or shape (0, 5) when the network was not run.
    meta : dict
        How the hits were obtained (model, device, thresholds, input facts).
    """

    hits: dict[str, np.ndarray]
    duration_s: float
    activations: np.ndarray
    meta: dict = field(default_factory=dict)


def hits_from_activations(activations: np.ndarray, params: DrumsParams = DrumsParams(),
                          picker=None) -> dict[str, np.ndarray]:
    """Per-class onset times (s) from (frames, 5) Frame_RNN activations at 100 fps.

    ``picker`` is ``pick_peaks`` (default, the original's madmom peak picking) or
    ``pick_peaks_port``.
    """
    p = params
    picker = picker or pick_peaks
    activations = np.asarray(activations)
    if activations.ndim != 2 or activations.shape[1] != len(DRUM_CLASSES):
        raise ValueError(f"activations must be (frames, {len(DRUM_CLASSES)}), got {activations.shape}")
    return {
        c.name: picker(activations[:, i], getattr(p.thresholds, c.name), adtof.FPS, p.pre_avg_s, p.post_avg_s,
                       p.pre_max_s, p.post_max_s, p.combine_s)
        for i, c in enumerate(DRUM_CLASSES)
    }


def transcribe(model: adtof.LoadedModel, signal: AudioSignal,
               params: DrumsParams = DrumsParams()) -> DrumTranscription:
    """Transcribe the drums of a signal with ADTOF Frame_RNN.

    Parameters
    ----------
    model : adtof.LoadedModel
        From ``adtof.load_model``; reuse it across tracks.
    signal : AudioSignal
        Any rate and channel count: downmixed to mono (channel mean) and
        resampled to 44.1 kHz as ADTOF expects.
    params : DrumsParams, optional
        Thresholds and peak picking (``device`` is used at load time, ``adtof.load_model``).

    Returns
    -------
    DrumTranscription
        Digital silence yields no hits without running the network (meta
        ``input_silent`` is true).
    """
    import time

    p = params
    meta = {
        "model": "ADTOF Frame_RNN (Zehren et al. 2021/2023), mirflow PyTorch implementation",
        "weights_path": model.path,
        "weights_sha256": model.sha256,
        "device": model.device,
        "input_sample_rate": signal.sample_rate,
        "resampled_to": adtof.MODEL_SAMPLE_RATE if signal.sample_rate != adtof.MODEL_SAMPLE_RATE else None,
        "fps": adtof.FPS,
        "thresholds": as_dict(p.thresholds),
        "peak_picking": {"pre_avg_s": p.pre_avg_s, "post_avg_s": p.post_avg_s, "pre_max_s": p.pre_max_s,
                         "post_max_s": p.post_max_s, "combine_s": p.combine_s},
        "input_silent": False,
    }
    if signal.is_digital_silence():
        meta["input_silent"] = True
        return DrumTranscription({c.name: np.zeros(0) for c in DRUM_CLASSES}, signal.duration_s,
                                 np.zeros((0, len(DRUM_CLASSES)), np.float32), meta)
    start = time.perf_counter()
    spec = adtof.log_filtered_spectrogram(signal.mono(), signal.sample_rate)
    meta["preprocessing_s"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    activations = adtof.predict_activations(model, spec)
    meta["network_s"] = round(time.perf_counter() - start, 3)
    meta["frames"] = int(activations.shape[0])
    hits = hits_from_activations(activations, p)
    return DrumTranscription(hits, signal.duration_s, activations, meta)


# --------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------

def drum_features(transcription: DrumTranscription) -> FeatureResult:
    """Hit counts and densities per class.

    ``drum_hits_<class>`` is the number of onsets; ``drum_density_<class>`` is
    that count divided by the analysed duration (hits per second). Totals add
    all classes (simultaneous hits of different classes count separately).
    """
    result = FeatureResult()
    duration = float(transcription.duration_s)
    if not duration > 0:
        result.mark_all_absent(KEYS, "empty signal")
        return result
    total = 0
    for name in CLASS_NAMES:
        count = int(len(transcription.hits[name]))
        total += count
        result.set(f"drum_hits_{name}", count)
        result.set(f"drum_density_{name}", count / duration)
    result.set("drum_hits_total", total)
    result.set("drum_density_total", total / duration)
    return result


# --------------------------------------------------------------------------
# MIDI
# --------------------------------------------------------------------------

def drum_midi_notes(hits: dict[str, np.ndarray], note_duration_s: float = 0.1, velocity: int = 100) -> list[MidiNote]:
    """One note per hit: the class's GM note, ``note_duration_s`` long, fixed velocity."""
    notes = []
    for c in DRUM_CLASSES:
        for t in np.asarray(hits.get(c.name, []), dtype=np.float64):
            notes.append(MidiNote(float(t), float(t) + note_duration_s, c.midi_note, int(velocity)))
    return notes


def drum_midi_bytes(hits: dict[str, np.ndarray], beats=None, params: DrumsParams = DrumsParams(), *,
                    ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER) -> bytes:
    """``drums_adtof.mid`` content: the hits on channel 10 (index 9), tempo map from ``beats``.

    Without beats the file's tempo is 120 BPM, which only sets the MIDI time
    base: note times are the transcribed times either way. Each note lasts
    ``note_duration_s`` (0.1 s, as ADTOF writes) but ends no later than the next
    hit of the same note.
    """
    return midi_file_bytes(drum_midi_notes(hits, params.note_duration_s, params.velocity), channel=DRUM_CHANNEL,
                           program=0, track_name="Drums (ADTOF)", beats=beats, ticks_per_quarter=ticks_per_quarter)


def write_drum_midi(path: str | os.PathLike, hits: dict[str, np.ndarray], beats=None,
                    params: DrumsParams = DrumsParams(), *, ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER) -> dict:
    """Write ``drums_adtof.mid`` atomically; returns facts for ``_meta``."""
    p = params
    write_bytes_atomic(path, drum_midi_bytes(hits, beats, p, ticks_per_quarter=ticks_per_quarter))
    tmap = tempo_map(beats, ticks_per_quarter)
    return {"path": str(path), "tempo_source": tmap.source, "tempo_events": int(len(tmap.ticks)),
            "notes": {c.name: c.midi_note for c in DRUM_CLASSES}, "channel": DRUM_CHANNEL + 1,
            "note_duration_s": p.note_duration_s, "velocity": p.velocity}


def compute_drums(model: adtof.LoadedModel, signal: AudioSignal, params: DrumsParams = DrumsParams(),
                  input_name: str = "drums", midi_path: str | os.PathLike | None = None,
                  beats: np.ndarray | None = None) -> FeatureResult:
    """Transcribe, optionally write ``drums_adtof.mid``, and return the ``drums`` features.

    Parameters
    ----------
    model : adtof.LoadedModel
    signal : AudioSignal
        The drums stem when the track has one, else the full mix (the caller decides).
    params : DrumsParams, optional
        Thresholds, peak picking and MIDI notes.
    input_name : str
        What ``signal`` is ("drums" or "full_mix"), recorded in meta ``input``.
    midi_path : path, optional
        Where to write the MIDI file.
    beats : np.ndarray, optional
        Beat times (s) of the track for the MIDI tempo map.
    """
    transcription = transcribe(model, signal, params)
    result = drum_features(transcription)
    result.meta.update(transcription.meta)
    result.meta["input"] = input_name
    if midi_path is not None:
        result.meta["midi"] = write_drum_midi(midi_path, transcription.hits, beats, params)
    return result
