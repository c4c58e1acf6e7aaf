"""Speed of the rhythm family, single-threaded; prints a Markdown table.

Usage (from the repository root)::

    PYTHONPATH=scripts .venv/bin/python benchmarks/rhythm_speed.py [--repeats 3]

The input is the demo song "Night Drive 128" (44.1 kHz stereo) tiled to 30 s
and to 3 min. Reported: the realtime factor (processing seconds per audio
second; < 1 is faster than real time) of the whole full-mix analysis
(``analyse_rhythm``: downbeat RNN, DBN, madmom tempo, Essentia tempo, CNN
onsets, features), by wall clock and by process CPU time, best of
``--repeats`` runs after one warm-up run (model loading is reported apart),
plus a per-stage breakdown and the four per-stem analyses. OMP, MKL, OpenBLAS
and numexpr threads are set to 1 before numpy is imported; madmom and
onnxruntime run with one thread by construction.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from mirflow.audio import AudioSignal  # noqa: E402
from mirflow.demo import DEMO_SONGS, render_song  # noqa: E402
from mirflow.features import rhythm as R  # noqa: E402
from mirflow.features import rhythm_detectors as det  # noqa: E402


def tile(samples: np.ndarray, frames: int) -> np.ndarray:
    reps = int(np.ceil(frames / samples.shape[1]))
    return np.ascontiguousarray(np.tile(samples, (1, reps))[:, :frames])


def timed(fn, repeats: int):
    """Best wall and CPU seconds of ``repeats`` calls, and the last return value."""
    best_wall = best_cpu = np.inf
    out = None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        best_wall = min(best_wall, time.perf_counter() - w)
        best_cpu = min(best_cpu, time.process_time() - c)
    return best_wall, best_cpu, out


def bench_length(song, seconds: int, p, repeats: int) -> None:
    """Print the table rows for ``song`` tiled to ``seconds`` s (a function: its closures run before it returns)."""
    sr = song.sample_rate
    frames = seconds * sr
    signal = AudioSignal(tile(song.mix, frames), sr)
    mono44, _ = det.resample_for_madmom(signal.mono(), sr)
    beats_holder = {}

    def full():
        result, grids = R.analyse_rhythm(signal)
        beats_holder["beats"] = grids.beats
        return result

    stages = [
        ("**analyse_rhythm (whole full-mix analysis)**", full),
        ("  downbeat RNN + DBN", lambda: det.track_beats_and_downbeats(mono44, p)),
        ("  CNN onsets", lambda: det.madmom_onsets(mono44, p)),
        ("  Essentia RhythmExtractor2013", lambda: det.essentia_tempo_bpm(mono44, p)),
    ]
    for label, fn in stages:
        wall, cpu, _ = timed(fn, repeats)
        print(f"| {seconds} s | {label} | {wall:.3f} | {cpu:.3f} | {wall / seconds:.4f} | {cpu / seconds:.4f} |")
    detections = det.track_beats_and_downbeats(mono44, p)
    wall, cpu, _ = timed(lambda: det.madmom_tempo_bpm(detections.beat_activation, p), repeats)
    print(f"| {seconds} s |   madmom tempo | {wall:.3f} | {cpu:.3f} | {wall / seconds:.4f} | {cpu / seconds:.4f} |")
    stems = {name: AudioSignal(tile(x, frames), sr) for name, x in song.stems.items()}

    def all_stems():
        return [R.analyse_stem_rhythm(s, beats_holder["beats"], R.RhythmParams(), name) for name, s in stems.items()]

    wall, cpu, _ = timed(all_stems, repeats)
    print(f"| {seconds} s | 4 stems (analyse_stem_rhythm each) | {wall:.3f} | {cpu:.3f} | "
          f"{wall / seconds:.4f} | {cpu / seconds:.4f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    song = render_song(DEMO_SONGS[0])
    sr = song.sample_rate
    w, c = time.perf_counter(), time.process_time()
    R.analyse_rhythm(AudioSignal(song.mix[:, : 5 * sr], sr))  # loads every model once
    print(f"warm-up (model loading + 5 s analysis): wall {time.perf_counter() - w:.2f} s, "
          f"CPU {time.process_time() - c:.2f} s\n")

    p = R.RhythmParams()
    print("| input | stage | wall s | CPU s | RTF wall | RTF CPU |")
    print("|---|---|---|---|---|---|")
    for seconds in (30, 180):
        bench_length(song, seconds, p, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
