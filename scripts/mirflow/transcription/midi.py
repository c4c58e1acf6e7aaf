"""Standard MIDI files for transcriptions, with an optional beat-grid tempo map.

Notes are given in seconds. A MIDI file stores ticks; the tempo map says how
long a tick is. Without a beat grid the tempo is a constant 120 BPM, which only
fixes the time base: every note still starts at its transcribed time (to within
half a tick, about 0.5 ms). With a beat grid each beat becomes one quarter note,
so a DAW's bar lines follow the music.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

#: Tempo written when no beat grid is given (MIDI time base only).
DEFAULT_MIDI_BPM = 120.0
DEFAULT_TICKS_PER_QUARTER = 480
_MAX_TEMPO_US = 0xFFFFFF  # the MIDI tempo field has 24 bits


@dataclass(frozen=True)
class TempoMap:
    """Piecewise-constant MIDI tempo.

    Attributes
    ----------
    ticks : np.ndarray
        int64, tick at which each tempo starts (the first is 0), increasing.
    tempos_us : np.ndarray
        int64, microseconds per quarter note from that tick on.
    ticks_per_quarter : int
    source : str
        "beat grid" or "default 120 BPM".
    """

    ticks: np.ndarray
    tempos_us: np.ndarray
    ticks_per_quarter: int
    source: str

    def segment_start_seconds(self) -> np.ndarray:
        """Time (s) at which each tempo segment starts."""
        durations = np.diff(self.ticks) * self.tempos_us[:-1] / (1e6 * self.ticks_per_quarter)
        return np.concatenate([[0.0], np.cumsum(durations)])

    def seconds_to_ticks(self, times_s) -> np.ndarray:
        """Nearest tick of each time (s >= 0), inverting how a MIDI reader maps ticks to seconds."""
        times_s = np.asarray(times_s, dtype=np.float64)
        starts = self.segment_start_seconds()
        seg = np.clip(np.searchsorted(starts, times_s, side="right") - 1, 0, len(starts) - 1)
        ticks_per_s = 1e6 * self.ticks_per_quarter / self.tempos_us[seg]
        return np.rint(self.ticks[seg] + (times_s - starts[seg]) * ticks_per_s).astype(np.int64)


def tempo_map(beats=None, ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER) -> TempoMap:
    """MIDI tempo map that puts every beat on a quarter note.

    Between beats ``i`` and ``i + 1`` the tempo is ``60 / (b[i+1] - b[i])`` BPM
    (rounded to whole microseconds per quarter, as MIDI stores it). Before the
    first beat one tempo makes the first beat fall on the whole tick nearest to
    where the first interval's tempo would put it; after the last beat the last
    interval's tempo continues. With ``None`` or fewer than two beats: constant
    120 BPM.

    Parameters
    ----------
    beats : array-like of float or None
        Beat times in seconds, strictly increasing, >= 0.
    ticks_per_quarter : int

    Raises
    ------
    ValueError
        If beats are negative or not strictly increasing, or an interval is
        longer than the slowest MIDI tempo (16.7 s per quarter).
    """
    ppq = int(ticks_per_quarter)
    beats = None if beats is None else np.asarray(beats, dtype=np.float64).reshape(-1)
    if beats is None or beats.size < 2:
        return TempoMap(np.array([0]), np.array([int(round(60e6 / DEFAULT_MIDI_BPM))]), ppq, "default 120 BPM")
    if beats[0] < 0 or np.any(np.diff(beats) <= 0) or not np.all(np.isfinite(beats)):
        raise ValueError("beat times must be finite, >= 0 and strictly increasing")
    tempos = np.rint(np.diff(beats) * 1e6).astype(np.int64)
    if tempos.max() > _MAX_TEMPO_US or tempos.min() < 1:
        raise ValueError("a beat interval is outside what a MIDI tempo can express (1 us .. 16.7 s)")
    first_tick = int(round(beats[0] * 1e6 * ppq / tempos[0]))
    ticks = first_tick + ppq * np.arange(len(tempos), dtype=np.int64)
    if first_tick > 0:
        pre_tempo = int(round(beats[0] * 1e6 * ppq / first_tick))
        ticks = np.concatenate([[0], ticks])
        tempos = np.concatenate([[min(max(pre_tempo, 1), _MAX_TEMPO_US)], tempos])
    return TempoMap(ticks, tempos, ppq, "beat grid")


@dataclass(frozen=True)
class MidiNote:
    """One note: start and end in seconds, MIDI pitch 0-127, velocity 1-127."""

    start_s: float
    end_s: float
    pitch: int
    velocity: int


def midi_file_bytes(notes: list[MidiNote], channel: int, program: int, track_name: str, beats=None,
                    ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER) -> bytes:
    """A type-1 Standard MIDI File: track 0 the tempo map, track 1 the notes.

    Parameters
    ----------
    notes : list of MidiNote
        Any order. A note ending after the next note of the same pitch starts is
        cut at that start (MIDI cannot overlap two notes of one pitch on one
        channel); every note lasts at least one tick.
    channel : int
        MIDI channel index 0-15 (9 = General MIDI percussion).
    program : int
        General MIDI program 0-127 (ignored by players on channel 9).
    track_name : str
    beats : array-like or None
        Beat times (s) for ``tempo_map``.

    Returns
    -------
    bytes
    """
    import mido

    tmap = tempo_map(beats, ticks_per_quarter)
    events = []  # (tick, order, pitch, message): note_off (order 0) before note_on (order 1) at one tick
    by_pitch: dict[int, list[MidiNote]] = {}
    for note in notes:
        if not 0 <= int(note.pitch) <= 127 or not 1 <= int(note.velocity) <= 127:
            raise ValueError(f"note outside MIDI range: {note}")
        by_pitch.setdefault(int(note.pitch), []).append(note)
    for pitch, group in by_pitch.items():
        group.sort(key=lambda n: n.start_s)
        starts = tmap.seconds_to_ticks([n.start_s for n in group])
        ends = tmap.seconds_to_ticks([n.end_s for n in group])
        ends[:-1] = np.minimum(ends[:-1], starts[1:])
        ends = np.maximum(ends, starts + 1)
        for note, s, e in zip(group, starts, ends):
            events.append((int(s), 1, pitch, mido.Message("note_on", channel=channel, note=pitch,
                                                          velocity=int(note.velocity))))
            events.append((int(e), 0, pitch, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))
    events.sort(key=lambda e: e[:3])

    smf = mido.MidiFile(type=1, ticks_per_beat=tmap.ticks_per_quarter)
    conductor = mido.MidiTrack()
    last = 0
    for tick, tempo in zip(tmap.ticks, tmap.tempos_us):
        conductor.append(mido.MetaMessage("set_tempo", tempo=int(tempo), time=int(tick) - last))
        last = int(tick)
    conductor.append(mido.MetaMessage("end_of_track", time=0))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=track_name, time=0))
    track.append(mido.Message("program_change", channel=channel, program=int(program), time=0))
    last = 0
    for tick, _, _, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    smf.tracks.extend([conductor, track])
    buffer = io.BytesIO()
    smf.save(file=buffer)
    return buffer.getvalue()

