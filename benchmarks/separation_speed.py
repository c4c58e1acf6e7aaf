"""Demucs separation speed: seconds per minute of audio, model load and process start-up versus separation.

Random-weight checkpoints of the real architectures run at the real models' speed (same layers, same
shapes). htdemucs_ft is a bag of four htdemucs-sized models, so it is built from four random checkpoints.

    PYTHONPATH=scripts:tests .venv/bin/python benchmarks/separation_speed.py [--seconds 60] [--device cpu]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["htdemucs", "htdemucs_ft"])
    args = parser.parse_args()

    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, demucs.apply, mirflow.separation"], check=True)
    import_s = time.perf_counter() - started

    import torch

    from demucs_fixture import write_random_htdemucs
    from mirflow.audio import AudioSignal
    from mirflow.separation import bag_definition, load_separator, separate

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    sr = 44100
    audio = (0.1 * rng.standard_normal((2, int(sr * args.seconds)))).astype(np.float32)
    signal = AudioSignal(audio, sr, "<noise>", "test")
    print(f"device={args.device} threads={args.threads} audio={args.seconds:.0f} s; "
          f"python+torch+demucs import in a fresh process: {import_s:.1f} s")
    print(f"{'model':12s} {'load s':>7s} {'separate s':>11s} {'s per audio min':>16s} {'x realtime':>11s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            sigs = bag_definition(name)["models"]
            files = [str(write_random_htdemucs(Path(tmp) / name, sig, seed=i)) for i, sig in enumerate(sigs)]
            t0 = time.perf_counter()
            separator = load_separator(name, files, args.device)
            load_s = time.perf_counter() - t0
            _stems, _sr, meta = separate(separator, signal, {"shifts": 1, "overlap": 0.25}, args.device)
            sep_s = meta["separation_s"]
            print(f"{name:12s} {load_s:7.2f} {sep_s:11.1f} {sep_s * 60 / args.seconds:16.1f} "
                  f"{args.seconds / sep_s:11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
