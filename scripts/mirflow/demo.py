"""Deterministic demo corpus: synthetic songs with exact ground truth.

mirflow ships no audio. ``python -m mirflow.demo OUT_DIR`` renders a small
corpus in pure numpy (no downloads, no system synthesizer) so the whole
workflow, its tests and its accuracy checks can run anywhere:

* four songs, each a folder ``OUT_DIR/<song_id>/`` with ``full_mix.flac``,
  the stems ``drums.flac``, ``bass.flac``, ``other.flac``, ``vocals.flac``
  (44.1 kHz, stereo, PCM_16) and ``ground_truth.json``;
* two single files without stems in ``OUT_DIR/loose/`` (Ogg Vorbis and MP3),
  each with its ground truth in ``<file stem>.truth.json`` beside it.

The music is deliberately plain so the truth is unambiguous: a constant tempo,
drums on a fixed grid (kick on strong beats, snare on backbeats, closed hi-hat
on eighths), a plucked bass playing chord roots on downbeats plus passing
notes, one piano-like chord per bar from a cadential progression, and a
vowel-like voice singing chord tones with rests. Every onset in the truth is
the exact (sub-sample) time at which the synthesized event starts.

Rendering is deterministic: every random choice (noise, melody) comes from
``numpy.random.default_rng(spec.seed)`` drawn in a fixed order, so rendering a
spec twice gives identical arrays and regenerating the corpus gives identical
FLAC sample data (Ogg/MP3 are compared after decoding).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .jsonio import dumps_strict, read_json, write_text_atomic

#: Bump whenever the rendered audio or the truth format changes: a corpus
#: folder whose ``.complete`` names another version is regenerated.
GENERATOR_VERSION = "mirflow-demo-corpus 1"

SAMPLE_RATE = 44100
#: Common target peak of every mix: -1 dBFS.
TARGET_PEAK = 0.89
STEM_NAMES = ("drums", "bass", "other", "vocals")
FULL_MIX_NAME = "full_mix.flac"
TRUTH_NAME = "ground_truth.json"
LOOSE_DIR = "loose"
COMPLETE_MARKER = ".complete"
#: Silence before the first beat: a beat tracker must find it, not assume t=0.
FIRST_BEAT_S = 0.5
#: Shortest tail (decays only, no new events) after the last bar.
MIN_TAIL_S = 0.8

_PITCH_CLASSES = {
    "C": 0, "B#": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "Fb": 4,
    "F": 5, "E#": 5, "F#": 6, "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9,
    "A#": 10, "Bb": 10, "B": 11, "Cb": 11,
}
# Harmonic minor: the raised 7th is the leading tone of the V chord, which is
# what makes a minor key unambiguous against its relative major.
_SCALE_STEPS = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 11)}
_TRIAD_STEPS = {"maj": (0, 4, 7), "min": (0, 3, 7)}

# Pitch windows (MIDI). Bass roots sit in [31, 42] so root + fifth + approach
# notes stay inside the bass range 28-55; chord voicings start in [55, 66].
_BASS_ROOT_LOW = 31
_CHORD_ROOT_LOW = 55
_CHORD_TOP = 76
_VOICE_LOW, _VOICE_HIGH = 60, 74
BASS_MIDI_RANGE = (28, 55)


def pitch_class(name: str) -> int:
    """Pitch class (C=0 ... B=11) of a note name such as ``"Eb"`` or ``"F#"``.

    Raises
    ------
    ValueError
        If the name is not a note letter with an optional single ``#``/``b``.
    """
    if name not in _PITCH_CLASSES:
        raise ValueError(f"unknown note name {name!r}; use e.g. 'A', 'Eb', 'F#'")
    return _PITCH_CLASSES[name]


def parse_chord(symbol: str) -> tuple[str, str]:
    """Split a chord symbol (``"Am"``, ``"Eb"``, ``"F#m"``) into (root name, quality).

    Quality is ``"maj"`` or ``"min"``; only triads are used by the demo.
    """
    if symbol.endswith("m"):
        root, quality = symbol[:-1], "min"
    else:
        root, quality = symbol, "maj"
    pitch_class(root)
    return root, quality


def chord_label(symbol: str) -> str:
    """Harte/mir_eval chord label of a symbol: ``"Am"`` -> ``"A:min"``, ``"Eb"`` -> ``"Eb:maj"``."""
    root, quality = parse_chord(symbol)
    return f"{root}:{quality}"


def midi_to_hz(midi: float) -> float:
    """Equal-tempered frequency in Hz of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


@dataclass(frozen=True)
class SongSpec:
    """Everything that defines one demo song.

    Attributes
    ----------
    song_id : str
        Folder name of the song (for loose files: the file stem).
    tempo_bpm : float
        Constant tempo in beats per minute.
    beats_per_bar : int
        3 or 4.
    tonic : str
        Key tonic as a note name, e.g. ``"A"``, ``"Eb"``, ``"F#"``.
    mode : str
        ``"major"`` or ``"minor"``.
    duration_s : float
        Length of the rendered audio in seconds (rounded to whole frames).
        The song fills as many whole bars as fit after ``first_beat_s`` while
        leaving at least ``MIN_TAIL_S`` of tail.
    progression : tuple of str
        Chord symbols, one per bar, repeated cyclically (``"Am"``, ``"E"``).
    seed : int
        Seed of ``numpy.random.default_rng`` for noise and melody choices.
    silent_vocals : bool
        When true the vocals stem is exact digital silence and the truth has
        no vocal notes.
    first_beat_s : float
        Time of the first beat in seconds.
    """

    song_id: str
    tempo_bpm: float
    beats_per_bar: int
    tonic: str
    mode: str
    duration_s: float
    progression: tuple[str, ...]
    seed: int
    silent_vocals: bool = False
    first_beat_s: float = FIRST_BEAT_S

    def __post_init__(self):
        if self.beats_per_bar not in (3, 4):
            raise ValueError(f"{self.song_id}: beats_per_bar must be 3 or 4, got {self.beats_per_bar}")
        if self.mode not in _SCALE_STEPS:
            raise ValueError(f"{self.song_id}: mode must be 'major' or 'minor', got {self.mode!r}")
        if not 40 <= self.tempo_bpm <= 240:
            raise ValueError(f"{self.song_id}: tempo_bpm {self.tempo_bpm} outside 40-240")
        pitch_class(self.tonic)
        if not self.progression:
            raise ValueError(f"{self.song_id}: progression is empty")
        for symbol in self.progression:
            parse_chord(symbol)
        if self.n_bars < 1:
            raise ValueError(
                f"{self.song_id}: duration_s {self.duration_s} leaves no whole bar of "
                f"{self.bar_s:.3f} s after first_beat_s {self.first_beat_s} and a {MIN_TAIL_S} s tail"
            )

    @property
    def beat_s(self) -> float:
        """Beat period in seconds."""
        return 60.0 / self.tempo_bpm

    @property
    def bar_s(self) -> float:
        """Bar period in seconds."""
        return self.beat_s * self.beats_per_bar

    @property
    def n_bars(self) -> int:
        """Number of whole bars that fit (see ``duration_s``)."""
        return int(math.floor((self.duration_s - self.first_beat_s - MIN_TAIL_S) / self.bar_s + 1e-9))

    @property
    def key_pitch_class(self) -> int:
        return pitch_class(self.tonic)

    @property
    def key_label(self) -> str:
        """Key as ``"A minor"``."""
        return f"{self.tonic} {self.mode}"


@dataclass(frozen=True)
class LooseFile:
    """A demo track stored as one encoded file without stems.

    Attributes
    ----------
    file_name : str
        Name inside ``OUT_DIR/loose/``; its stem must equal ``song.song_id``.
    song : SongSpec
        What to render.
    audio_format, subtype : str
        libsndfile container and codec, e.g. ``("OGG", "VORBIS")``.
    """

    file_name: str
    song: SongSpec
    audio_format: str
    subtype: str


DEMO_SONGS: tuple[SongSpec, ...] = (
    SongSpec("Night Drive 128", 128.0, 4, "A", "minor", 16.5, ("Am", "Dm", "E", "Am"), seed=1281),
    SongSpec("Café Waltz, D major", 96.0, 3, "D", "major", 16.5, ("D", "G", "A", "D"), seed=963),
    SongSpec("Harbour Lights 100", 100.0, 4, "Eb", "major", 20.7, ("Eb", "Ab", "Bb", "Eb"), seed=1003),
    SongSpec("Instrumental Rush 140", 140.0, 4, "F#", "minor", 15.25, ("F#m", "Bm", "C#", "F#m"),
             seed=1404, silent_vocals=True),
)

LOOSE_FILES: tuple[LooseFile, ...] = (
    LooseFile("loop 120.ogg",
              SongSpec("loop 120", 120.0, 4, "C", "major", 12.0, ("C", "F", "G", "C"), seed=1205),
              "OGG", "VORBIS"),
    LooseFile("Ünïcode 'quote' 90.mp3",
              SongSpec("Ünïcode 'quote' 90", 90.0, 4, "G", "major", 12.0, ("G", "C", "D", "G"), seed=907),
              "MP3", "MPEG_LAYER_III"),
)


@dataclass
class RenderedSong:
    """A rendered song.

    Attributes
    ----------
    stems : dict
        ``"drums"``, ``"bass"``, ``"other"``, ``"vocals"`` -> float32 (2, frames).
    mix : np.ndarray
        float32 (2, frames), exactly ``((drums + bass) + other) + vocals``.
    sample_rate : int
        Samples per second.
    truth : dict
        JSON-able ground truth; times in seconds.
    """

    stems: dict[str, np.ndarray]
    mix: np.ndarray
    sample_rate: int
    truth: dict = field(default_factory=dict)


# --------------------------------------------------------------------------
# Score: what is played when (pure functions of the spec and its rng)
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Note:
    onset_s: float
    offset_s: float
    midi: int
    velocity: float


def _beat_time(spec: SongSpec, beat_index: float) -> float:
    return spec.first_beat_s + beat_index * spec.beat_s


def _bar_chords(spec: SongSpec) -> list[str]:
    return [spec.progression[i % len(spec.progression)] for i in range(spec.n_bars)]


def _chord_pitch_classes(symbol: str) -> tuple[int, ...]:
    root, quality = parse_chord(symbol)
    return tuple((pitch_class(root) + step) % 12 for step in _TRIAD_STEPS[quality])


def _drum_hits(spec: SongSpec) -> dict[str, list[tuple[float, float]]]:
    """(onset_s, velocity) of every kick, snare and closed hi-hat hit.

    4/4: kick on beats 1 and 3, snare on 2 and 4. 3/4: kick on 1, a soft snare
    on 2 and 3 (waltz "oom-pah-pah"). Hi-hat on every eighth. The downbeat kick
    is the loudest hit of the bar so the meter is audible.
    """
    bpb = spec.beats_per_bar
    if bpb == 4:
        kick_beats = {0: 1.0, 2: 0.7}
        snare_beats = {1: 0.8, 3: 0.8}
    else:
        kick_beats = {0: 1.0}
        snare_beats = {1: 0.45, 2: 0.45}
    hits: dict[str, list[tuple[float, float]]] = {"kick": [], "snare": [], "hihat": []}
    for bar in range(spec.n_bars):
        for beat in range(bpb):
            index = bar * bpb + beat
            if beat in kick_beats:
                hits["kick"].append((_beat_time(spec, index), kick_beats[beat]))
            if beat in snare_beats:
                hits["snare"].append((_beat_time(spec, index), snare_beats[beat]))
            hits["hihat"].append((_beat_time(spec, index), 1.0))
            hits["hihat"].append((_beat_time(spec, index + 0.5), 0.6))
    return hits


def _nearest_scale_tones(spec: SongSpec, midi: int) -> tuple[int, int]:
    """Nearest tones of the key's scale strictly below and strictly above ``midi``."""
    steps = {(spec.key_pitch_class + s) % 12 for s in _SCALE_STEPS[spec.mode]}
    below = next(m for m in range(midi - 1, midi - 13, -1) if m % 12 in steps)
    above = next(m for m in range(midi + 1, midi + 13) if m % 12 in steps)
    return below, above


def _bass_root_midi(symbol: str) -> int:
    root, _ = parse_chord(symbol)
    return _BASS_ROOT_LOW + (pitch_class(root) - _BASS_ROOT_LOW) % 12


def _bass_notes(spec: SongSpec, rng: np.random.Generator) -> list[_Note]:
    """Chord root on every downbeat, a fifth or an approach note later in the bar.

    The last bar holds the tonic root. An approach note is the scale tone just
    below or above the next bar's root (a passing note), played on the last beat.
    """
    chords = _bar_chords(spec)
    bpb, beat_s = spec.beats_per_bar, spec.beat_s
    gap_s = 0.04  # articulation: every note is released before the next starts
    notes: list[_Note] = []
    for bar, symbol in enumerate(chords):
        root = _bass_root_midi(symbol)
        start = bar * bpb
        if bar == len(chords) - 1:
            onset = _beat_time(spec, start)
            notes.append(_Note(onset, onset + bpb * beat_s - gap_s, root, 1.0))
            continue
        next_root = _bass_root_midi(chords[bar + 1])
        below, above = _nearest_scale_tones(spec, next_root)
        approach = int(below if rng.random() < 0.5 else above)
        if bpb == 4:
            pattern = [(0, 1.75, root, 1.0), (2, 0.9, root + 7 if bar % 2 == 0 else root + 12, 0.75),
                       (3, 0.9, approach, 0.7)]
        else:
            second = root + 7 if bar % 2 == 0 else approach
            pattern = [(0, 1.9, root, 1.0), (2, 0.9, second, 0.7)]
        for beat, length_beats, midi, velocity in pattern:
            onset = _beat_time(spec, start + beat)
            notes.append(_Note(onset, onset + length_beats * beat_s - gap_s, int(midi), velocity))
    return notes


def _chord_voicing(symbol: str) -> list[int]:
    """Root-position triad with the root in [55, 66] (no doubling: the chroma
    of the chord stem then weights root, third and fifth alike)."""
    root, quality = parse_chord(symbol)
    root_midi = _CHORD_ROOT_LOW + (pitch_class(root) - _CHORD_ROOT_LOW) % 12
    return [root_midi + step for step in _TRIAD_STEPS[quality] if root_midi + step <= _CHORD_TOP]


def _chord_strikes(spec: SongSpec) -> list[tuple[float, float, str, float]]:
    """(onset_s, end_s, chord symbol, velocity) of every piano chord strike.

    4/4: strike on beat 1, softer restrike on beat 3. 3/4: strike on beat 1,
    short soft "pah" stabs on beats 2 and 3. A strike rings until the next one;
    the final strike rings into the tail.
    """
    chords = _bar_chords(spec)
    bpb = spec.beats_per_bar
    pattern = [(0, 1.0), (2, 0.55)] if bpb == 4 else [(0, 1.0), (1, 0.5), (2, 0.5)]
    strikes = []
    for bar, symbol in enumerate(chords):
        for beat, velocity in pattern:
            strikes.append((_beat_time(spec, bar * bpb + beat), symbol, velocity))
    end_of_song = _beat_time(spec, spec.n_bars * bpb) + MIN_TAIL_S - 0.05
    out = []
    for i, (onset, symbol, velocity) in enumerate(strikes):
        end = strikes[i + 1][0] + 0.02 if i + 1 < len(strikes) else end_of_song
        out.append((onset, end, symbol, velocity))
    return out


_MELODY_RHYTHMS = {
    # (beat offset in bar, length in beats); the rest of the bar is a rest.
    4: (((0, 1.0), (1, 1.0), (2, 1.5)), ((0, 1.5), (1.5, 0.5), (2, 1.0)),
        ((0, 2.0), (2.5, 1.0)), ((0, 3.0),)),
    3: (((0, 2.0),), ((0, 1.0), (1, 1.0), (2, 0.75)), ((0, 1.5), (1.5, 0.5), (2, 0.75))),
}


def _vocal_notes(spec: SongSpec, rng: np.random.Generator) -> list[_Note]:
    """A melody of chord tones in MIDI 60-74, stepwise between chord tones, with rests.

    Rhythms come from a small fixed set per meter; the last bar holds the tonic.
    """
    chords = _bar_chords(spec)
    bpb, beat_s = spec.beats_per_bar, spec.beat_s
    gap_s = 0.06
    previous = 67
    notes: list[_Note] = []
    rhythms = _MELODY_RHYTHMS[bpb]
    for bar, symbol in enumerate(chords):
        start = bar * bpb
        if bar == len(chords) - 1:
            candidates = [m for m in range(_VOICE_LOW, _VOICE_HIGH + 1) if m % 12 == spec.key_pitch_class]
            midi = min(candidates, key=lambda m: (abs(m - previous), m))
            onset = _beat_time(spec, start)
            notes.append(_Note(onset, onset + (bpb - 0.5) * beat_s - gap_s, midi, 0.9))
            continue
        tones = [m for m in range(_VOICE_LOW, _VOICE_HIGH + 1) if m % 12 in _chord_pitch_classes(symbol)]
        rhythm = rhythms[int(rng.integers(len(rhythms)))]
        for k, (beat, length_beats) in enumerate(rhythm):
            ranked = sorted(tones, key=lambda m: (abs(m - previous), m))
            # nearest chord tone, sometimes the second nearest: mostly stepwise, never static for long
            midi = ranked[int(rng.integers(0, 2))] if k > 0 or bar > 0 else ranked[0]
            onset = _beat_time(spec, start + beat)
            velocity = 0.9 if beat == 0 else 0.75
            notes.append(_Note(onset, onset + length_beats * beat_s - gap_s, int(midi), velocity))
            previous = midi
    return notes


# --------------------------------------------------------------------------
# Synthesis (vectorised numpy; t is seconds since the event's exact onset)
# --------------------------------------------------------------------------

def _pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power (left, right) gains for pan in [-1, 1] (0 = centre)."""
    angle = (pan + 1.0) * math.pi / 4.0
    return math.cos(angle), math.sin(angle)


def _add_event(track: np.ndarray, sample_rate: int, onset_s: float, length_s: float,
               render: Callable[[np.ndarray], np.ndarray], pan: float = 0.0) -> None:
    """Add ``render(t)`` to ``track`` (2, frames) starting at the exact time ``onset_s``.

    ``t`` holds the seconds since the onset of each sample at or after it, so
    the event starts at sub-sample precision and the truth onset is exact.
    """
    start = int(math.ceil(onset_s * sample_rate - 1e-6))
    stop = min(track.shape[1], int(math.ceil((onset_s + length_s) * sample_rate)))
    if stop <= start:
        return
    t = np.maximum(np.arange(start, stop, dtype=np.float64) / sample_rate - onset_s, 0.0)
    signal = render(t)
    left, right = _pan_gains(pan)
    track[0, start:stop] += left * signal
    track[1, start:stop] += right * signal


def _release(t: np.ndarray, length_s: float, release_s: float) -> np.ndarray:
    """1 until ``length_s - release_s``, then a linear fade reaching 0 at ``length_s``."""
    return np.clip((length_s - t) / release_s, 0.0, 1.0)


def _kick(t: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Sine swept exponentially from 150 Hz towards 50 Hz, fast decay, with a 4 ms click."""
    f_start, f_end, sweep_tau = 150.0, 50.0, 0.035
    phase = 2 * np.pi * (f_end * t + (f_start - f_end) * sweep_tau * (1 - np.exp(-t / sweep_tau)))
    body = np.sin(phase) * np.exp(-t / 0.16) * np.minimum(t / 0.001, 1.0)
    return body + 0.25 * noise * np.exp(-t / 0.004)


def _snare(t: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Noise burst (first-differenced, i.e. brightened) plus a 200 Hz tone."""
    bright = np.empty_like(noise)
    bright[0] = noise[0]
    bright[1:] = noise[1:] - 0.6 * noise[:-1]
    attack = np.minimum(t / 0.0007, 1.0)
    return attack * (0.55 * bright * np.exp(-t / 0.055) + 0.5 * np.sin(2 * np.pi * 200.0 * t) * np.exp(-t / 0.07))


def _hihat(t: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Second-differenced (high-passed) noise with a 22 ms decay."""
    high = np.zeros_like(noise)
    high[2:] = (noise[2:] - 2 * noise[1:-1] + noise[:-2]) / 4.0
    return high * np.exp(-t / 0.022)


def _harmonic_tone(t: np.ndarray, f0: float, amplitudes: np.ndarray, decay_rates: np.ndarray,
                   nyquist_hz: float) -> np.ndarray:
    """Sum of harmonics k*f0 (k = 1..) with given amplitudes and exponential decays (1/s)."""
    out = np.zeros_like(t)
    for k, (amplitude, rate) in enumerate(zip(amplitudes, decay_rates), start=1):
        if k * f0 >= 0.9 * nyquist_hz:  # keep every partial well below Nyquist (no aliasing)
            break
        out += amplitude * np.sin(2 * np.pi * k * f0 * t) * np.exp(-rate * t)
    return out


_BASS_HARMONICS = np.arange(1, 9)
_BASS_AMPS = 1.0 / _BASS_HARMONICS
_BASS_DECAYS = 1.5 + 1.2 * _BASS_HARMONICS


def _bass_tone(t: np.ndarray, midi: int, length_s: float, nyquist_hz: float) -> np.ndarray:
    """Plucked bass: 8 harmonics, upper ones decaying faster, 3 ms attack, 20 ms release."""
    tone = _harmonic_tone(t, midi_to_hz(midi), _BASS_AMPS, _BASS_DECAYS, nyquist_hz)
    return tone * np.minimum(t / 0.003, 1.0) * _release(t, length_s, 0.02)


_PIANO_HARMONICS = np.arange(1, 11)
_PIANO_AMPS = _PIANO_HARMONICS ** -1.6
_PIANO_DECAYS = 0.9 + 0.7 * _PIANO_HARMONICS


def _piano_tone(t: np.ndarray, midi: int, length_s: float, nyquist_hz: float) -> np.ndarray:
    """Piano/organ-like tone: 10 harmonics with faster decays up the series, 4 ms attack, 40 ms release."""
    tone = _harmonic_tone(t, midi_to_hz(midi), _PIANO_AMPS, _PIANO_DECAYS, nyquist_hz)
    return tone * np.minimum(t / 0.004, 1.0) * _release(t, length_s, 0.04)


# (formant frequencies Hz, bandwidths Hz, relative gains) for sung vowels a, o, e
_VOWELS = (
    ((800.0, 1150.0, 2900.0), (90.0, 110.0, 160.0), (1.0, 0.5, 0.2)),
    ((450.0, 800.0, 2830.0), (80.0, 100.0, 160.0), (1.0, 0.6, 0.1)),
    ((400.0, 1700.0, 2600.0), (70.0, 110.0, 160.0), (1.0, 0.4, 0.25)),
)


def _voice_tone(t: np.ndarray, midi: int, length_s: float, vowel: int, sample_rate: int) -> np.ndarray:
    """Vowel-like sung tone: harmonics shaped by three formant resonances, with a
    5.5 Hz, +-25 cent vibrato fading in over 250 ms, 40 ms attack and 80 ms release.

    The vibrato is centred on the note's pitch, so its median F0 is the MIDI pitch.
    """
    f0 = midi_to_hz(midi)
    vibrato_cents = 25.0 * np.sin(2 * np.pi * 5.5 * t) * np.minimum(t / 0.25, 1.0)
    inst_f0 = f0 * 2.0 ** (vibrato_cents / 1200.0)
    phase = 2 * np.pi * np.cumsum(inst_f0) / sample_rate
    formants, bandwidths, gains = _VOWELS[vowel]
    out = np.zeros_like(t)
    k = 1
    while k * f0 < min(5000.0, 0.45 * sample_rate):
        frequency = k * f0
        amplitude = 0.15 / k  # glottal-source tilt keeps the fundamental present
        for formant, bandwidth, gain in zip(formants, bandwidths, gains):
            amplitude += gain / (1.0 + ((frequency - formant) / (bandwidth / 2.0)) ** 2)
        out += amplitude * np.sin(k * phase)
        k += 1
    envelope = np.minimum(t / 0.04, 1.0) * _release(t, length_s, 0.08)
    return out * envelope


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------

def _note_dict(note: _Note) -> dict:
    return {"onset": note.onset_s, "offset": note.offset_s, "midi": note.midi}


def render_song(spec: SongSpec, sample_rate: int = SAMPLE_RATE) -> RenderedSong:
    """Render a song's stems, mix and ground truth.

    Parameters
    ----------
    spec : SongSpec
        The song.
    sample_rate : int
        Output sample rate in Hz.

    Returns
    -------
    RenderedSong
        Stems and mix are float32 (2, frames) with ``frames = round(duration_s *
        sample_rate)``. All stems share ONE gain chosen so the mix peaks at
        ``TARGET_PEAK`` (-1 dBFS); stems are never normalised individually.
    """
    rng = np.random.default_rng(spec.seed)
    frames = int(round(spec.duration_s * sample_rate))
    nyquist = sample_rate / 2.0
    tracks = {name: np.zeros((2, frames), dtype=np.float64) for name in STEM_NAMES}

    # Score first, in a fixed order, so the rng stream (and thus the song) is reproducible.
    drum_hits = _drum_hits(spec)
    bass_notes = _bass_notes(spec, rng)
    vocal_notes = [] if spec.silent_vocals else _vocal_notes(spec, rng)
    strikes = _chord_strikes(spec)

    # Each render lambda binds its loop values as default arguments; mypy cannot infer the type of a lambda with
    # default arguments ("Cannot infer type of lambda"), hence the narrow ignores below.
    drums = tracks["drums"]
    kick_len, snare_len, hat_len = 0.5, 0.3, 0.12
    for onset, velocity in drum_hits["kick"]:
        noise = rng.standard_normal(int(kick_len * sample_rate) + 2)
        _add_event(drums, sample_rate, onset, kick_len, lambda t, n=noise, v=velocity: v * _kick(t, n[: t.size]))  # type: ignore[misc]
    for onset, velocity in drum_hits["snare"]:
        noise = rng.standard_normal(int(snare_len * sample_rate) + 2)
        _add_event(drums, sample_rate, onset, snare_len,
                   lambda t, n=noise, v=velocity: 0.9 * v * _snare(t, n[: t.size]), pan=-0.1)  # type: ignore[misc]
    for onset, velocity in drum_hits["hihat"]:
        noise = rng.standard_normal(int(hat_len * sample_rate) + 2)
        _add_event(drums, sample_rate, onset, hat_len,
                   lambda t, n=noise, v=velocity: 0.9 * v * _hihat(t, n[: t.size]), pan=0.35)  # type: ignore[misc]

    for note in bass_notes:
        length = note.offset_s - note.onset_s
        _add_event(tracks["bass"], sample_rate, note.onset_s, length,
                   lambda t, n=note, d=length: 0.75 * n.velocity * _bass_tone(t, n.midi, d, nyquist))  # type: ignore[misc]

    for onset, end, symbol, velocity in strikes:
        length = end - onset
        voicing = _chord_voicing(symbol)
        for i, midi in enumerate(voicing):
            pan = -0.4 + 0.8 * i / max(len(voicing) - 1, 1)  # spread the chord across the stereo field
            _add_event(tracks["other"], sample_rate, onset, length,
                       lambda t, m=midi, d=length, v=velocity: 0.33 * v * _piano_tone(t, m, d, nyquist), pan=pan)  # type: ignore[misc]

    for i, note in enumerate(vocal_notes):
        length, vowel = note.offset_s - note.onset_s, i % len(_VOWELS)
        _add_event(tracks["vocals"], sample_rate, note.onset_s, length,
                   lambda t, n=note, d=length, vowel=vowel:  # type: ignore[misc]
                   0.75 * n.velocity * _voice_tone(t, n.midi, d, vowel, sample_rate))

    raw_mix = tracks["drums"] + tracks["bass"] + tracks["other"] + tracks["vocals"]
    peak = max(float(np.max(np.abs(raw_mix))), *(float(np.max(np.abs(x))) for x in tracks.values()))
    gain = TARGET_PEAK / peak
    stems = {name: (tracks[name] * gain).astype(np.float32) for name in STEM_NAMES}
    mix = ((stems["drums"] + stems["bass"]) + stems["other"]) + stems["vocals"]

    truth = build_truth(spec, sample_rate, frames, drum_hits, bass_notes, vocal_notes)
    truth["mix_gain"] = gain
    return RenderedSong(stems=stems, mix=mix, sample_rate=sample_rate, truth=truth)


def build_truth(spec: SongSpec, sample_rate: int, frames: int, drum_hits: dict,
                bass_notes: list[_Note], vocal_notes: list[_Note]) -> dict:
    """Assemble the JSON-able ground truth (times in seconds)."""
    bpb = spec.beats_per_bar
    n_beats = spec.n_bars * bpb
    beats = [_beat_time(spec, i) for i in range(n_beats)]
    chords = _bar_chords(spec)
    return {
        "generator_version": GENERATOR_VERSION,
        "song_id": spec.song_id,
        "tempo_bpm": float(spec.tempo_bpm),
        "beats_per_bar": bpb,
        "time_signature": f"{bpb}/4",
        "duration_s": frames / sample_rate,
        "sample_rate": sample_rate,
        "first_beat_s": spec.first_beat_s,
        "n_bars": spec.n_bars,
        "beats": beats,
        "downbeats": beats[::bpb],
        "key": {"tonic": spec.tonic, "mode": spec.mode, "pitch_class": spec.key_pitch_class,
                "label": spec.key_label},
        "chords": [{"start": _beat_time(spec, bar * bpb), "end": _beat_time(spec, (bar + 1) * bpb),
                    "label": chord_label(symbol)} for bar, symbol in enumerate(chords)],
        "drum_hits": {name: [onset for onset, _ in hits] for name, hits in drum_hits.items()},
        "bass_notes": [_note_dict(n) for n in bass_notes],
        "vocal_notes": [_note_dict(n) for n in vocal_notes],
        "silent_vocals": spec.silent_vocals,
    }


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------

def truth_path_for(track_path: str | os.PathLike) -> Path:
    """Ground-truth JSON of a demo track: ``<song dir>/ground_truth.json`` for a
    song folder (or a file inside it), ``<file stem>.truth.json`` for a loose file."""
    track_path = Path(track_path)
    if track_path.is_dir():
        return track_path / TRUTH_NAME
    if track_path.name == FULL_MIX_NAME or track_path.stem in STEM_NAMES:
        return track_path.parent / TRUTH_NAME
    return track_path.with_suffix(".truth.json")


def load_truth(track_path: str | os.PathLike) -> dict:
    """Read the ground truth of a demo track (see ``truth_path_for``)."""
    return read_json(truth_path_for(track_path))


def expected_corpus_files(out_dir: str | os.PathLike) -> list[Path]:
    """Every file a complete corpus has (audio and truth), excluding the marker."""
    out_dir = Path(out_dir)
    files = []
    for spec in DEMO_SONGS:
        song_dir = out_dir / spec.song_id
        files += [song_dir / FULL_MIX_NAME] + [song_dir / f"{s}.flac" for s in STEM_NAMES] + [song_dir / TRUTH_NAME]
    for loose in LOOSE_FILES:
        path = out_dir / LOOSE_DIR / loose.file_name
        files += [path, truth_path_for(path)]
    return files


def corpus_track_paths(out_dir: str | os.PathLike) -> list[Path]:
    """The corpus's tracks: one folder per song, then the loose files."""
    out_dir = Path(out_dir)
    return [out_dir / s.song_id for s in DEMO_SONGS] + [out_dir / LOOSE_DIR / f.file_name for f in LOOSE_FILES]


def is_corpus_complete(out_dir: str | os.PathLike) -> bool:
    """True when ``out_dir/.complete`` names this generator version and every file exists."""
    marker = Path(out_dir) / COMPLETE_MARKER
    if not marker.is_file() or marker.read_text(encoding="utf-8").strip() != GENERATOR_VERSION:
        return False
    return all(p.is_file() for p in expected_corpus_files(out_dir))


def quantize_pcm16(samples: np.ndarray) -> np.ndarray:
    """float (channels, frames) full scale 1.0 -> int16 (frames, channels), rounding to nearest.

    Decoding divides by 32768, so decoded = round(x * 32768) / 32768.

    Raises
    ------
    ValueError
        If a sample would clip (the demo never clips; clipping would be a bug).
    """
    scaled = np.rint(np.asarray(samples, dtype=np.float64) * 32768.0)
    if scaled.size and (scaled.max() > 32767 or scaled.min() < -32768):
        raise ValueError(f"sample peak {np.max(np.abs(samples)):.4f} would clip in PCM_16")
    return np.ascontiguousarray(scaled.astype(np.int16).T)


def _write_audio_atomic(path: Path, data: np.ndarray, sample_rate: int, audio_format: str, subtype: str) -> None:
    """Write with soundfile to a temporary file beside ``path``, then rename into place."""
    import soundfile as sf

    from .jsonio import atomic_path

    with atomic_path(path) as tmp:
        sf.write(tmp, data, sample_rate, format=audio_format, subtype=subtype)


def write_song(song: RenderedSong, song_dir: str | os.PathLike) -> Path:
    """Write a rendered song as ``full_mix.flac``, four stem FLACs (PCM_16) and ``ground_truth.json``."""
    song_dir = Path(song_dir)
    for name in STEM_NAMES:
        _write_audio_atomic(song_dir / f"{name}.flac", quantize_pcm16(song.stems[name]), song.sample_rate,
                            "FLAC", "PCM_16")
    _write_audio_atomic(song_dir / FULL_MIX_NAME, quantize_pcm16(song.mix), song.sample_rate, "FLAC", "PCM_16")
    write_text_atomic(song_dir / TRUTH_NAME, dumps_strict(song.truth))
    return song_dir


def write_loose_file(loose: LooseFile, out_dir: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> Path:
    """Render ``loose.song`` and write only its mix, encoded, plus ``<stem>.truth.json``."""
    song = render_song(loose.song, sample_rate)
    path = Path(out_dir) / LOOSE_DIR / loose.file_name
    _write_audio_atomic(path, np.ascontiguousarray(song.mix.T), sample_rate, loose.audio_format, loose.subtype)
    truth = dict(song.truth)
    truth["file_format"] = f"{loose.audio_format}/{loose.subtype}"
    write_text_atomic(truth_path_for(path), dumps_strict(truth))
    return path


def generate_demo_corpus(out_dir: str | os.PathLike, force: bool = False,
                         log: Callable[[str], None] | None = None) -> list[Path]:
    """Render and write the whole demo corpus into ``out_dir`` (idempotent).

    Parameters
    ----------
    out_dir : str or PathLike
        Target folder; created if missing. Only the corpus's own files are
        written; nothing else in it is touched.
    force : bool
        Regenerate even when the corpus is complete.
    log : callable, optional
        Receives one progress line per track (and the "up to date" message).

    Returns
    -------
    list of Path
        The corpus's track paths (song folders, then loose files), also when
        the corpus was already complete and nothing was written.
    """
    out_dir = Path(out_dir)
    say = log or (lambda message: None)
    if not force and is_corpus_complete(out_dir):
        say(f"demo corpus in {out_dir} is complete ({GENERATOR_VERSION}); nothing to do")
        return corpus_track_paths(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / COMPLETE_MARKER
    if marker.exists():
        marker.unlink()  # a crash mid-way must not leave a corpus that claims to be complete
    written = []
    for spec in DEMO_SONGS:
        written.append(write_song(render_song(spec), out_dir / spec.song_id))
        say(f"wrote {written[-1]}")
    for loose in LOOSE_FILES:
        written.append(write_loose_file(loose, out_dir))
        say(f"wrote {written[-1]}")
    write_text_atomic(marker, GENERATOR_VERSION + "\n")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mirflow.demo",
        description="Write the deterministic synthetic demo corpus (songs with stems and ground truth).",
    )
    parser.add_argument("out_dir", help="folder to write the corpus into")
    parser.add_argument("--force", action="store_true", help="regenerate even if the corpus is complete")
    args = parser.parse_args(argv)
    generate_demo_corpus(args.out_dir, force=args.force, log=print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
