"""Speed of Audiobox Aesthetics (random weights of the real architecture: same speed as the real checkpoint).

Usage (from the repository root)::

    PYTHONPATH=scripts .venv/bin/python benchmarks/aesthetics_speed.py [--seconds 60] [--device auto]
        [--batch-windows 16] [--checkpoint PATH]

Writes a random-weight ``checkpoint.pt`` in the package's format to a temporary folder (or uses
``--checkpoint``), then reports checkpoint load time and the time of
``mirflow.aesthetics.predict_aesthetics`` on ``--seconds`` of 44.1 kHz stereo audio (resampling, 10 s windows,
forward passes, weighting), as seconds per minute of audio, and the projection for a 7.5 min track (the old
tool reported ~100 s for that on its GPU). Timings are wall-clock: on a shared machine, compare runs made back
to back.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from aesthetics_fixture import write_random_aesthetics_checkpoint  # noqa: E402
from mirflow import aesthetics as aes  # noqa: E402
from mirflow.audio import AudioSignal  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-windows", type=int, default=16)
    parser.add_argument("--checkpoint", type=Path)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or write_random_aesthetics_checkpoint(Path(tmp) / "checkpoint.pt")
        started = time.perf_counter()
        model = aes.load_aesthetics_model(str(checkpoint), args.device)
        load_s = time.perf_counter() - started

    sr = 44100
    t = np.arange(int(args.seconds * sr)) / sr
    rng = np.random.default_rng(0)
    mix = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    signal = AudioSignal(np.stack([mix, 0.9 * mix]).astype(np.float32), sr)
    # Warm-up on one window (first-call allocations and kernel selection are not per-track costs).
    aes.predict_aesthetics(model, AudioSignal(signal.samples[:, : 2 * sr], sr), aes.AestheticsParams(batch_windows=1))
    started = time.perf_counter()
    result = aes.predict_aesthetics(model, signal, aes.AestheticsParams(batch_windows=args.batch_windows))
    if model.device.startswith("cuda"):
        torch.cuda.synchronize()
    compute_s = time.perf_counter() - started
    per_min = compute_s / (args.seconds / 60.0)

    print(f"device: {model.device}; torch threads: {torch.get_num_threads()}; CPU cores: {os.cpu_count()}; "
          f"checkpoint: {'given' if args.checkpoint else 'random weights, real architecture'}\n")
    print("| step | seconds |")
    print("|---|---|")
    print(f"| checkpoint load ({model.model_cfg.get('precision')} precision) | {load_s:.2f} |")
    print(f"| predict {args.seconds:g} s of 44.1 kHz stereo ({result.meta['windows']} windows, batch "
          f"{args.batch_windows}) | {compute_s:.2f} |")
    print(f"| per minute of audio | {per_min:.2f} |")
    print(f"| projected for a 7.5 min track | {per_min * 7.5:.1f} |")
    print(f"\nvalues (random weights): {result.values}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
