"""Speed of the eight Audio Commons timbral models; prints a Markdown table.

Usage (from the repository root)::

    PYTHONPATH=scripts .venv/bin/python benchmarks/timbral_speed.py [--input FILE] [--seconds 180]
        [--profile] [--no-baseline]

The input (default: the first demo song, tiled) is cut or tiled to
``--seconds`` of stereo audio. Each model runs in this process, once without
and once with the speed-ups of :mod:`mirflow.compat.timbral` (memoised filter
designs, memoised specific loudness, numpy reductions, line-by-line HPSS median
filters, compiled envelope;
``--no-baseline`` skips the plain run); the table
gives seconds and the
realtime factor (audio duration / compute time) per model and in total, and
checks that both runs return bit-identical values. ``--profile`` adds the
cProfile top functions (by own time) over all eight models with the speed-ups.

Timings are wall-clock on whatever machine runs this: on a shared machine,
compare runs made back to back.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from mirflow.audio import load_audio  # noqa: E402
from mirflow.features.timbral import MODELS, library_input, run_model_in_process  # noqa: E402


def input_samples(path: Path | None, seconds: float) -> tuple[np.ndarray, int, str]:
    """(channels, frames) float32 of exactly ``seconds``, its rate and a description."""
    if path is not None:
        signal = load_audio(path)
        samples, rate, name = signal.samples, signal.sample_rate, path.name
    else:
        from mirflow.demo import DEMO_SONGS, render_song

        song = render_song(DEMO_SONGS[0])
        samples, rate, name = song.mix, song.sample_rate, f"demo song '{DEMO_SONGS[0].song_id}'"
    frames = int(seconds * rate)
    reps = -(-frames // samples.shape[1])
    return np.tile(samples, (1, reps))[:, :frames], rate, f"{name} tiled to {seconds:g} s"


def time_models(audio: np.ndarray, rate: int, speedups: bool) -> dict[str, tuple[float, float]]:
    """Model key -> (value, seconds)."""
    out = {}
    for key, model in MODELS.items():
        start = time.perf_counter()
        value = run_model_in_process(model, audio, rate, speedups)["value"]
        out[key] = (value, time.perf_counter() - start)
        print(f"  {key:14s} speedups={speedups!s:5s} {out[key][1]:7.1f} s", file=sys.stderr, flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args(argv)

    samples, rate, described = input_samples(args.input, args.seconds)
    audio = library_input(samples)
    duration = samples.shape[1] / rate
    # Warm-up on 2 s: numba JIT compilation in librosa would otherwise be charged to the first model.
    time_models(library_input(samples[:, : 2 * rate]), rate, True)

    runs = {}
    if not args.no_baseline:
        runs["plain"] = time_models(audio, rate, False)
    runs["speed-ups"] = time_models(audio, rate, True)

    print(f"Input: {described}, {rate} Hz, {samples.shape[0]} channels.\n")
    header = "| model | " + " | ".join(f"{name}: s | x realtime" for name in runs) + " |"
    print(header)
    print("|---|" + "---|---|" * len(runs))
    for key in MODELS:
        cells = [f"{runs[n][key][1]:.1f} | {duration / runs[n][key][1]:.1f}" for n in runs]
        print(f"| {key} | " + " | ".join(cells) + " |")
    totals = {n: sum(t for _v, t in r.values()) for n, r in runs.items()}
    print("| **all eight** | " + " | ".join(f"{totals[n]:.1f} | {duration / totals[n]:.2f}" for n in runs) + " |")
    if len(runs) == 2:
        same = all(runs["plain"][k][0] == runs["speed-ups"][k][0] for k in MODELS)
        print(f"\nValues bit-identical with and without the speed-ups: {same}")
        if not same:
            for key in MODELS:
                print(f"- {key}: {runs['plain'][key][0]!r} vs {runs['speed-ups'][key][0]!r}")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for model in MODELS.values():
            run_model_in_process(model, audio, rate, True)
        profiler.disable()
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(15)
        print("\ncProfile, all eight models with the speed-ups, top 15 by own time:\n```")
        print("\n".join(line for line in buffer.getvalue().splitlines() if line.strip())[:6000])
        print("```")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
