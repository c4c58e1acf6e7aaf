"""Bass transcription with Spotify's Basic Pitch (ICASSP 2022) through its ONNX model.

Basic Pitch (Bittner et al., "A lightweight instrument-agnostic model for
polyphonic note transcription and multipitch estimation", ICASSP 2022) maps
22.05 kHz mono audio to per-frame note, onset and contour posteriors (86.13
frames per second, 88 piano keys). Its ``basic-pitch`` package ships the model
as ``nmp.onnx``, which onnxruntime runs without TensorFlow.

This module feeds the model exactly as ``basic_pitch.inference`` does (3840
zeros prepended, windows of 43844 samples every 36164 samples, the last one
zero-padded; the first and last 15 output frames of every window dropped),
but batches the windows into one onnxruntime call per ``batch_windows`` and
restricts the note decoding to the bass range before it runs. Notes are
decoded with Basic Pitch's own ``output_to_notes_polyphonic`` (onset peaks,
frame-energy tracking, the "melodia trick"); pitch bends are not estimated.
Then notes that are a louder overlapping note's harmonic are dropped
(``suppress_harmonic_ghosts``; on the demo corpus this removes 25 of 30 false
notes and no true one).

Frame times are computed exactly from the windowing: output frame ``j`` of
window ``w = j // 142`` is centred on input sample ``256 * j - 188 * w`` (each
window advances 36164 samples but contributes 142 frames = 36352 samples).
Basic Pitch's own ``model_frames_to_time`` instead applies an empirical
correction per 172 frames; the two agree to within about 8 ms.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..audio import AudioSignal
from ..errors import ConfigError, MirflowError
from ..jsonio import write_bytes_atomic
from ..params import param
from .adtof import file_sha256
from .midi import DEFAULT_TICKS_PER_QUARTER, MidiNote, midi_file_bytes, tempo_map

MODEL_SAMPLE_RATE = 22050
FFT_HOP = 256
WINDOW_SAMPLES = 2 * MODEL_SAMPLE_RATE - FFT_HOP  # 43844
OVERLAP_FRAMES = 30
OVERLAP_SAMPLES = OVERLAP_FRAMES * FFT_HOP  # 7680
WINDOW_HOP = WINDOW_SAMPLES - OVERLAP_SAMPLES  # 36164
FRAMES_PER_WINDOW = 172
KEPT_FRAMES_PER_WINDOW = FRAMES_PER_WINDOW - OVERLAP_FRAMES  # 142
#: Output frames per second as Basic Pitch counts them (integer division).
ANNOTATIONS_FPS = MODEL_SAMPLE_RATE // FFT_HOP  # 86
LOWEST_MIDI = 21  # piano key A0: output bin 0
N_PITCHES = 88
INPUT_NAME = "serving_default_input_2:0"
OUTPUT_NAMES = {"note": "StatefulPartitionedCall:1", "onset": "StatefulPartitionedCall:2",
                "contour": "StatefulPartitionedCall:0"}
#: General MIDI program 34 "Electric Bass (finger)" (0-based 33).
BASS_PROGRAM = 33

#: Basic Pitch's decoding defaults (basic_pitch.inference.predict), not configurable.
MELODIA_TRICK = True
INFER_ONSETS = True
#: Model windows per onnxruntime run (memory only: the posteriors do not depend on it).
BATCH_WINDOWS = 8
HIGHEST_MIDI = LOWEST_MIDI + N_PITCHES - 1  # C8: output bin 87


@dataclass(frozen=True)
class BassParams:
    """Parameters of ``bass_transcription`` (config section ``bass_transcription``)."""

    onset_threshold: float = param(0.5, above=0.0, maximum=1.0, doc="Onset posterior a note must reach "
                                   "(Basic Pitch's default)")
    frame_threshold: float = param(0.3, above=0.0, maximum=1.0, doc="Frame posterior a note is continued above "
                                   "(Basic Pitch's default)")
    minimum_note_length_s: float = param(0.1277, unit="s", minimum=0.0, doc="Shorter notes are dropped "
                                         "(Basic Pitch's default, 11 frames)")
    # E1 (41.2 Hz, a 4-string bass's low E) is 28; C4 (261.6 Hz) is 60.
    min_midi: int = param(28, unit="MIDI note", minimum=LOWEST_MIDI, maximum=HIGHEST_MIDI,
                          doc="Lowest note of the bass range (28: E1)")
    max_midi: int = param(60, unit="MIDI note", minimum=LOWEST_MIDI, maximum=HIGHEST_MIDI,
                          doc="Highest note of the bass range (60: C4)")
    suppress_harmonics: bool = param(True, doc="Drop notes that are a louder overlapping note's 2nd-6th harmonic "
                                     "(a bass line is almost always monophonic)")

    def __post_init__(self) -> None:
        if self.min_midi > self.max_midi:
            raise ConfigError(f"bass_transcription.min_midi ({self.min_midi}) is above max_midi ({self.max_midi}).",
                              "set min_midi <= max_midi.")


#: Semitones from a fundamental to its harmonics 2..6 (12, 19.02, 24, 27.86, 31.02 rounded).
HARMONIC_INTERVALS = (12, 19, 24, 28, 31)
#: A fundamental may start this long after its harmonic ghost and still explain it (s).
GHOST_ONSET_TOLERANCE_S = 0.05


@contextlib.contextmanager
def _quiet_basic_pitch_import():
    """basic_pitch's __init__ logs a warning per missing optional backend
    (TensorFlow, CoreML, TFLite); none of them is used here."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def bundled_model_path() -> str:
    """Path of ``nmp.onnx`` inside the installed ``basic-pitch`` package.

    Raises
    ------
    MirflowError
        If basic-pitch is not installed or its ONNX model is missing.
    """
    import importlib.util

    spec = importlib.util.find_spec("basic_pitch")
    if spec is None or spec.origin is None:
        raise MirflowError("the basic-pitch package is not installed.", "run scripts/install.sh again.")
    path = os.path.join(os.path.dirname(spec.origin), "saved_models", "icassp_2022", "nmp.onnx")
    if not os.path.isfile(path):
        raise MirflowError(f"basic-pitch is installed but its ONNX model is missing ({path}).",
                           "reinstall basic-pitch (pip install --force-reinstall basic-pitch==0.4.0).")
    return path


class OnnxSession(Protocol):
    """What this module calls of an ``onnxruntime.InferenceSession`` (onnxruntime ships no type hints)."""

    def run(self, output_names: list[str], input_feed: dict[str, np.ndarray]) -> list[np.ndarray]: ...

    def get_providers(self) -> list[str]: ...


@dataclass
class BasicPitchModel:
    """An onnxruntime session of Basic Pitch.

    Attributes
    ----------
    session : onnxruntime.InferenceSession
    path, sha256 : str
        The model file and its SHA-256.
    providers : list of str
        onnxruntime execution providers in use.
    """

    session: OnnxSession
    path: str
    sha256: str
    providers: list[str] = field(default_factory=list)


def load_model(path: str | os.PathLike, sha256: str | None = None, device: str = "auto",
               threads: int | None = None) -> BasicPitchModel:
    """Open Basic Pitch's ONNX model.

    Parameters
    ----------
    path : path
        ``nmp.onnx`` (see ``bundled_model_path``).
    sha256 : str, optional
        Expected SHA-256 (from the model registry); checked when given.
    device : str
        "auto" uses onnxruntime's CUDA provider when it is available, else CPU;
        "cpu" forces CPU.
    threads : int, optional
        Intra-op threads for onnxruntime (default: onnxruntime's choice).

    Raises
    ------
    MirflowError
        If the file is missing, its SHA-256 differs, or onnxruntime cannot open it.
    """
    import onnxruntime as ort

    path = str(path)
    if not os.path.isfile(path):
        raise MirflowError(f"Basic Pitch model '{path}' does not exist.", "check the model registry path.")
    digest = file_sha256(path)
    if sha256 is not None and digest != sha256.lower():
        raise MirflowError(f"Basic Pitch model '{path}' has SHA-256 {digest}, expected {sha256}.",
                           "reinstall basic-pitch==0.4.0 or update the registry's checksum.")
    providers = ["CPUExecutionProvider"]
    if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = int(threads)
    try:
        session = ort.InferenceSession(path, sess_options=options, providers=providers)
    except Exception as err:  # onnxruntime raises several types for unreadable models
        raise MirflowError(f"onnxruntime cannot open Basic Pitch model '{path}': {err}",
                           "reinstall basic-pitch==0.4.0.") from err
    return BasicPitchModel(session, path, digest, list(session.get_providers()))


# --------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------

def window_signal(audio: np.ndarray) -> np.ndarray:
    """Cut 22.05 kHz mono audio into Basic Pitch's overlapping model windows.

    Returns
    -------
    np.ndarray
        float32 (n_windows, 43844, 1): window ``w`` holds samples
        ``w * 36164 - 3840 ...`` of ``audio`` (zeros outside it).
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    padded = np.concatenate([np.zeros(OVERLAP_SAMPLES // 2, np.float32), audio])
    n_windows = max(1, math.ceil(padded.size / WINDOW_HOP))
    total = (n_windows - 1) * WINDOW_HOP + WINDOW_SAMPLES
    padded = np.concatenate([padded, np.zeros(total - padded.size, np.float32)])
    view = np.lib.stride_tricks.sliding_window_view(padded, WINDOW_SAMPLES)[::WINDOW_HOP][:n_windows]
    return np.ascontiguousarray(view)[..., None]


def unwrap_windows(output: np.ndarray, n_samples: int) -> np.ndarray:
    """Join per-window outputs (n_windows, 172, bins): drop 15 frames at each
    window edge, concatenate, keep ``floor(n_samples * 86 / 22050)`` frames."""
    half = OVERLAP_FRAMES // 2
    kept = output[:, half:-half, :]
    frames = kept.reshape(-1, output.shape[2])
    return frames[: int(np.floor(n_samples * ANNOTATIONS_FPS / MODEL_SAMPLE_RATE))]


def frame_times(n_frames: int) -> np.ndarray:
    """Centre time (s) of each unwrapped output frame (see the module docstring)."""
    j = np.arange(n_frames)
    window = j // KEPT_FRAMES_PER_WINDOW
    drift = KEPT_FRAMES_PER_WINDOW * FFT_HOP - WINDOW_HOP  # 188 samples per window
    return (j * FFT_HOP - drift * window) / MODEL_SAMPLE_RATE


def model_posteriors(model: BasicPitchModel, audio_22k: np.ndarray, batch_windows: int = 8) -> dict[str, np.ndarray]:
    """Run Basic Pitch on a whole signal.

    Returns
    -------
    dict
        "note", "onset": float32 (frames, 88); "contour": (frames, 264); frames at
        ``frame_times``.
    """
    windows = window_signal(audio_22k)
    outputs: dict[str, list] = {k: [] for k in OUTPUT_NAMES}
    names = list(OUTPUT_NAMES.values())
    for start in range(0, len(windows), batch_windows):
        results = model.session.run(names, {INPUT_NAME: windows[start:start + batch_windows]})
        for key, value in zip(OUTPUT_NAMES, results):
            outputs[key].append(value)
    n = audio_22k.size
    return {k: unwrap_windows(np.concatenate(v), n) for k, v in outputs.items()}


@dataclass
class BassTranscription:
    """Notes of a bass signal.

    Attributes
    ----------
    notes : list of MidiNote
        Sorted by start time; velocity = round(127 * mean frame posterior).
    meta : dict
    """

    notes: list
    meta: dict = field(default_factory=dict)


def notes_from_posteriors(note: np.ndarray, onset: np.ndarray,
                          params: BassParams = BassParams()) -> list[MidiNote]:
    """Decode note events with Basic Pitch's ``output_to_notes_polyphonic`` in the bass range.

    Posteriors outside ``min_midi..max_midi`` are zeroed first, so no note (and
    no "melodia" note) outside the range can appear.
    """
    p = params
    with _quiet_basic_pitch_import():
        from basic_pitch.note_creation import output_to_notes_polyphonic
    note = np.array(note, dtype=np.float32, copy=True)
    onset = np.array(onset, dtype=np.float32, copy=True)
    lo, hi = p.min_midi - LOWEST_MIDI, p.max_midi - LOWEST_MIDI
    note[:, :lo] = 0
    note[:, hi + 1:] = 0
    onset[:, :lo] = 0
    onset[:, hi + 1:] = 0
    fps = MODEL_SAMPLE_RATE / FFT_HOP
    min_len_frames = int(np.round(p.minimum_note_length_s * fps))
    events = output_to_notes_polyphonic(note, onset, onset_thresh=p.onset_threshold,
                                        frame_thresh=p.frame_threshold, min_note_len=min_len_frames,
                                        infer_onsets=INFER_ONSETS, max_freq=None, min_freq=None,
                                        melodia_trick=MELODIA_TRICK)
    times = frame_times(note.shape[0] + 1)
    out = [MidiNote(float(times[s]), float(times[e]), int(pitch), max(1, int(round(127 * float(amp)))))
           for s, e, pitch, amp in events]
    return sorted(out, key=lambda n: (n.start_s, n.pitch))


def suppress_harmonic_ghosts(notes: list[MidiNote], tolerance_s: float = GHOST_ONSET_TOLERANCE_S) -> list[MidiNote]:
    """Remove notes that are most likely a harmonic of a lower bass note.

    A note ``n`` is removed when another note ``f`` (1) lies 12, 19, 24, 28 or
    31 semitones below it (its 2nd to 6th harmonic), (2) has a higher velocity
    (mean frame posterior), and (3) sounds at ``n``'s onset or starts at most
    ``tolerance_s`` after it. Basic Pitch is instrument-agnostic and often
    reports the strong upper harmonics of a bass tone as quieter notes of their
    own; a real double stop at those intervals that is quieter than its lower
    note is removed too (rare on bass).
    """
    kept = []
    for n in notes:
        ghost = any(
            (n.pitch - f.pitch) in HARMONIC_INTERVALS and f.velocity > n.velocity
            and f.start_s <= n.start_s + tolerance_s and f.end_s > n.start_s
            for f in notes if f is not n
        )
        if not ghost:
            kept.append(n)
    return kept


def transcribe(model: BasicPitchModel, signal: AudioSignal, params: BassParams = BassParams(), *,
               batch_windows: int = BATCH_WINDOWS) -> BassTranscription:
    """Transcribe a bass stem.

    Parameters
    ----------
    model : BasicPitchModel
        From ``load_model``; reuse it across tracks.
    signal : AudioSignal
        The bass stem, any rate/channels: mono downmix resampled to 22.05 kHz (soxr HQ).
    params : BassParams, optional
        Thresholds, bass range and harmonic suppression.
    batch_windows : int
        Model windows per onnxruntime run (memory only).

    Returns
    -------
    BassTranscription
        Digital silence gives no notes without running the model.
    """
    import time

    p = params
    meta = {
        "model": "Spotify Basic Pitch ICASSP 2022 (nmp.onnx, onnxruntime)",
        "model_path": model.path,
        "model_sha256": model.sha256,
        "providers": model.providers,
        "input_sample_rate": signal.sample_rate,
        "resampled_to": MODEL_SAMPLE_RATE,
        "onset_threshold": p.onset_threshold, "frame_threshold": p.frame_threshold,
        "minimum_note_length_s": p.minimum_note_length_s, "melodia_trick": MELODIA_TRICK, "infer_onsets": INFER_ONSETS,
        "min_midi": p.min_midi, "max_midi": p.max_midi, "suppress_harmonics": p.suppress_harmonics,
        "pitch_bends": False,
        "input_silent": bool(signal.is_digital_silence()),
    }
    if meta["input_silent"]:
        meta["note_count"] = 0
        return BassTranscription([], meta)
    started = time.perf_counter()
    import soxr

    audio = soxr.resample(signal.mono(), signal.sample_rate, MODEL_SAMPLE_RATE, quality="HQ").astype(np.float32) \
        if signal.sample_rate != MODEL_SAMPLE_RATE else signal.mono()
    meta["preprocessing_s"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    posteriors = model_posteriors(model, audio, batch_windows)
    meta["network_s"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    notes = notes_from_posteriors(posteriors["note"], posteriors["onset"], p)
    meta["notes_before_harmonic_suppression"] = len(notes)
    if p.suppress_harmonics:
        notes = suppress_harmonic_ghosts(notes)
    meta["decoding_s"] = round(time.perf_counter() - started, 3)
    meta["note_count"] = len(notes)
    return BassTranscription(notes, meta)


def bass_midi_bytes(notes: list[MidiNote], beats=None, ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER) -> bytes:
    """``bass_basicpitch.mid`` content: one track, GM program 34 (Electric Bass, finger), channel 1."""
    return midi_file_bytes(notes, channel=0, program=BASS_PROGRAM, track_name="Bass (Basic Pitch)", beats=beats,
                           ticks_per_quarter=ticks_per_quarter)


def write_bass_midi(path: str | os.PathLike, transcription: BassTranscription, beats=None, *,
                    ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER) -> dict:
    """Write ``bass_basicpitch.mid`` atomically; returns facts for meta."""
    write_bytes_atomic(path, bass_midi_bytes(transcription.notes, beats, ticks_per_quarter))
    tmap = tempo_map(beats, ticks_per_quarter)
    return {"path": str(path), "tempo_source": tmap.source, "program": BASS_PROGRAM, "channel": 1,
            "note_count": len(transcription.notes)}
