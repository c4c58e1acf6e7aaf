"""Speed of the Essentia classifier chains on CPU; prints a Markdown table.

Usage (from the repository root, with ../shared present)::

    PYTHONPATH=scripts .venv/bin/python benchmarks/classifier_speed.py [--input FILE] [--seconds 120]

Rows:

* MusiCNN chain with real weights (msd-musicnn-1.pb in essentia-tensorflow, its tags, and the six
  MusiCNN heads), as ``mirflow.classifiers.classify`` runs it: model load time, then seconds per minute of
  audio (resampling + mel + backbone + heads).
* The MusiCNN backbone alone in both runtimes on the same 16 kHz input: essentia-tensorflow (.pb, tags and
  embeddings in one session) and onnxruntime (.onnx; its mel patches from the same Essentia front end), and
  the largest difference between their embeddings.
* The real Discogs-EffNet heads (.pb) on 1280-d inputs, one per patch of the input duration (1.008 patches
  per second). The EffNet backbone itself is not available here, so its time is not measured.

The input (default: librosa_fishin.ogg from ../shared) is cut or tiled to ``--seconds``. Timings are
wall-clock on whatever machine runs this: on a shared machine, compare runs made back to back.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "scripts"))

from mirflow import classifiers as cls  # noqa: E402
from mirflow.audio import AudioSignal, load_audio  # noqa: E402

MUSICNN_HEADS = ("danceability", "mood_aggressive", "mood_happy", "mood_party", "mood_relaxed", "mood_sad")
EFFNET_HEADS = ("genre_discogs400", "mtg_jamendo_moodtheme", "danceability", "mood_aggressive", "mood_happy",
                "mood_relaxed", "mood_sad")


def input_signal(path: Path, seconds: float) -> AudioSignal:
    signal = load_audio(path)
    frames = int(seconds * signal.sample_rate)
    reps = -(-frames // signal.frames)
    return AudioSignal(np.tile(signal.samples, (1, reps))[:, :frames], signal.sample_rate, str(path), signal.decoder)


def timed(fn, *args, repeat: int = 2):
    """(result, best seconds of ``repeat`` runs)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return out, best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, default=SHARED / "audio/real/librosa_fishin.ogg")
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args(argv)
    tf_dir, onnx_dir = SHARED / "models/essentia_tf", SHARED / "models/essentia_onnx"
    if not tf_dir.is_dir():
        print(f"needs the real models in {tf_dir}", file=sys.stderr)
        return 2

    signal = input_signal(args.input, args.seconds)
    minutes = signal.duration_s / 60.0
    rows = []

    paths = {"msd-musicnn-1": str(tf_dir / "msd-musicnn-1.pb")}
    paths.update({f"{h}-msd-musicnn-1": str(onnx_dir / f"{h}-msd-musicnn-1.onnx") for h in MUSICNN_HEADS})
    started = time.perf_counter()
    models = cls.load_classifiers(paths)
    load_s = time.perf_counter() - started
    (result, _), chain_s = timed(cls.classify, models, signal)
    rows.append(("MusiCNN chain (classify: resample, mel, backbone .pb, tags, 6 ONNX heads)", load_s, chain_s))

    x16k = cls.to_model_input(signal, 4)
    (_, tf_emb), tf_s = timed(cls.run_musicnn, models.models["msd-musicnn-1"], x16k, 64)
    rows.append(("MusiCNN backbone, essentia-tensorflow .pb (mel included)", float("nan"), tf_s))
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    started = time.perf_counter()
    session = ort.InferenceSession(str(onnx_dir / "msd-musicnn-1.onnx"), providers=["CPUExecutionProvider"])
    onnx_load = time.perf_counter() - started

    def onnx_backbone(x):
        cut = cls.patches(cls.mel_frames(x), cls.MUSICNN.patch_frames, cls.MUSICNN.patch_hop_frames)
        return session.run(None, {session.get_inputs()[0].name: cut})[0]

    onnx_emb, onnx_s = timed(onnx_backbone, x16k)
    rows.append(("MusiCNN backbone, onnxruntime .onnx (mel included)", onnx_load, onnx_s))
    mel_s = timed(cls.mel_frames, x16k)[1]
    rows.append(("  of which the Essentia mel front end", float("nan"), mel_s))

    heads = {f"{h}-discogs-effnet-1": str(tf_dir / f"{h}-discogs-effnet-1.pb") for h in EFFNET_HEADS}
    started = time.perf_counter()
    effnet_heads = cls.load_classifiers(heads)
    heads_load = time.perf_counter() - started
    n_patches = max(1, int(round(signal.duration_s * 16000 / (62 * 256))))
    embeddings = np.random.default_rng(0).standard_normal((n_patches, 1280)).astype(np.float32)

    def all_heads(e):
        return [m.predictor(e) for m in effnet_heads.models.values()]

    heads_s = timed(all_heads, embeddings)[1]
    rows.append((f"7 real EffNet heads .pb on {n_patches} x 1280-d inputs", heads_load, heads_s))

    print(f"Input: {args.input.name} tiled/cut to {signal.duration_s:.0f} s ({signal.sample_rate} Hz, "
          f"{signal.channels} ch); CPU threads available: {os.cpu_count()}\n")
    print("| step | model load (s) | compute (s) | s per minute of audio |")
    print("|---|---|---|---|")
    for name, load, compute in rows:
        load_txt = "" if np.isnan(load) else f"{load:.2f}"
        print(f"| {name} | {load_txt} | {compute:.2f} | {compute / minutes:.2f} |")
    print(f"\nMusiCNN embeddings, max |TF - ONNX|: {float(np.abs(tf_emb - onnx_emb).max()):.2e}")
    print(f"musicnn_tags: {result.values['musicnn_tags']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
