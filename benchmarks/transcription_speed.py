"""Speed of drum (ADTOF Frame_RNN) and bass (Basic Pitch) transcription.

Prints the realtime factor (processing seconds per second of audio; below 1 is
faster than realtime) for 30 s and 3 min inputs, split into stages:

* ADTOF: preprocessing (mono 44.1 kHz -> log-filtered spectrogram), network
  (Frame_RNN on the whole track), peak picking;
* Basic Pitch: resampling to 22.05 kHz, network (onnxruntime), note decoding.

Inputs are demo-corpus stems ("Night Drive 128": drums for ADTOF, bass for
Basic Pitch) repeated to the target length. Each figure is the best of
``--repeat`` runs after one warm-up run. ADTOF uses the real weights when
``--weights`` (or the shared copy) exists, else random weights of the same
architecture (identical speed).

Usage::

    PYTHONPATH=scripts .venv/bin/python benchmarks/transcription_speed.py [--device cpu] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from mirflow import demo  # noqa: E402
from mirflow.audio import AudioSignal  # noqa: E402
from mirflow.transcription import adtof, bass, drums  # noqa: E402

SHARED = REPO.parent / "shared"
DURATIONS_S = (30.0, 180.0)


def tiled(stem: np.ndarray, sample_rate: int, duration_s: float) -> AudioSignal:
    n = int(duration_s * sample_rate)
    reps = -(-n // stem.shape[1])
    return AudioSignal(np.ascontiguousarray(np.tile(stem, (1, reps))[:, :n]), sample_rate)


def best_of(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def bench_adtof(model, signal: AudioSignal, repeat: int) -> dict[str, float]:
    mono = signal.mono()
    t_pre, spec = best_of(lambda: adtof.log_filtered_spectrogram(mono, signal.sample_rate), repeat)
    t_net, act = best_of(lambda: adtof.predict_activations(model, spec), repeat)
    t_pp, _ = best_of(lambda: drums.hits_from_activations(act), repeat)
    return {"preprocessing": t_pre, "network": t_net, "peak picking": t_pp}


def bench_basic_pitch(model, signal: AudioSignal, repeat: int) -> dict[str, float]:
    import soxr

    mono = signal.mono()
    t_res, audio = best_of(lambda: soxr.resample(mono, signal.sample_rate, bass.MODEL_SAMPLE_RATE, quality="HQ")
                           .astype(np.float32), repeat)
    t_net, post = best_of(lambda: bass.model_posteriors(model, audio), repeat)
    t_dec, _ = best_of(lambda: bass.suppress_harmonic_ghosts(bass.notes_from_posteriors(post["note"], post["onset"])),
                       repeat)
    return {"resampling": t_res, "network": t_net, "decoding": t_dec}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="ADTOF device: cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--weights", default=str(SHARED / "models/adtof/adtof_frame_rnn_pytorch_weights.pth"))
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if os.path.isfile(args.weights):
        adtof_model, weights = adtof.load_model(args.weights, args.device), "published weights"
    else:
        import tempfile

        path = Path(tempfile.mkdtemp()) / "random.pth"
        torch.save(adtof.new_frame_rnn().state_dict(), path)
        adtof_model, weights = adtof.load_model(path, args.device), "random weights (same architecture)"
    bp_model = bass.load_model(bass.bundled_model_path(), device=args.device, threads=args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible; "
          f"torch {torch.__version__} threads {torch.get_num_threads()}; ADTOF device {adtof_model.device} "
          f"({weights}); Basic Pitch providers {bp_model.providers}")

    song = demo.render_song(demo.DEMO_SONGS[0])
    # Warm-up (first-call allocations, lazy imports) on 5 s.
    bench_adtof(adtof_model, tiled(song.stems["drums"], song.sample_rate, 5.0), 1)
    bench_basic_pitch(bp_model, tiled(song.stems["bass"], song.sample_rate, 5.0), 1)

    print("\n| model | input | stage | seconds | realtime factor (s per audio s) |")
    print("|---|---|---|---:|---:|")
    for duration in DURATIONS_S:
        for name, stem, bench, model in (("ADTOF Frame_RNN", "drums", bench_adtof, adtof_model),
                                         ("Basic Pitch", "bass", bench_basic_pitch, bp_model)):
            stages = bench(model, tiled(song.stems[stem], song.sample_rate, duration), args.repeat)
            for stage, seconds in stages.items():
                print(f"| {name} | {duration:.0f} s {stem} | {stage} | {seconds:.3f} | {seconds / duration:.4f} |")
            total = sum(stages.values())
            print(f"| {name} | {duration:.0f} s {stem} | **total** | **{total:.3f}** | **{total / duration:.4f}** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
