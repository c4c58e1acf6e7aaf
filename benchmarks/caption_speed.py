"""Speed of the caption families; prints Markdown tables.

Usage (from the repository root)::

    PYTHONPATH=scripts .venv/bin/python benchmarks/caption_speed.py [--model models/llm/SmolLM2-135M-Instruct.Q4_1.gguf]
        [--tracks 6] [--threads 1] [--fetch]
        [--flamingo-model F.gguf --mmproj P.gguf --audio song.flac [--gpu-layers -1]]

Feature captions: the chat model is loaded once (timed), then every caption
style is written for ``--tracks`` synthetic feature sets (tempo, key, genre,
mood and instrument combinations); the table gives seconds per caption
(median and max over tracks, all tries included), how many were the model's
verified rewrite versus the template fallback, and the mean number of tries.
``--fetch`` obtains the model file through the model registry first.

Music Flamingo (optional, needs the GGUF text model, its mmproj and an audio
file): load time, the one-off audio encode (prefix) time, and seconds and
tokens per second for each default prompt.

Timings are wall-clock on whatever machine runs this: on a shared machine,
compare runs made back to back. llama.cpp's worker threads spin at barriers:
with more threads than free cores (an oversubscribed machine) generation
slows down several-fold, so give ``--threads`` at most the idle cores.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from mirflow.captions.feature_captions import caption_from_features, load_caption_model  # noqa: E402

GENRES = ["Electronic---Techno", "Jazz---Cool Jazz", "Rock---Indie Rock", "Folk, World, & Country---Folk",
          "Hip Hop---Boom Bap", "Classical---Baroque"]
MOODS = ["dark", "relaxed", "energetic", "happy", "melancholic", "calm"]
INSTRUMENTS = ["synthesizer", "piano", "electricguitar", "acousticguitar", "drummachine", "strings"]
KEYS = ["A minor", "F major", "E minor", "D major", "C minor", "G major"]


def synthetic_tracks(n: int) -> list[dict]:
    """``n`` feature sets covering different genres, tempi and keys (values as the families report them)."""
    tracks = []
    for i in range(n):
        j = i % len(GENRES)
        tracks.append({
            "bpm": 70.0 + 13.37 * i, "bpm_is_defined": 1, "key": KEYS[j], "lufs": -6.0 - 3.1 * i,
            "essentia_genre": {GENRES[j]: 0.7, GENRES[(j + 1) % len(GENRES)]: 0.05},
            "essentia_mood": {MOODS[j]: 0.6}, "essentia_instrument": {INSTRUMENTS[j]: 0.8,
                                                                       INSTRUMENTS[(j + 2) % 6]: 0.5},
        })
    return tracks


def bench_feature_captions(model_path: Path, n_tracks: int, threads: int) -> None:
    start = time.perf_counter()
    model = load_caption_model(str(model_path), threads=threads)
    load_s = time.perf_counter() - start
    rows: dict[str, list] = {}
    for features in synthetic_tracks(n_tracks):
        result = caption_from_features(model, features)
        for key, record in result.meta["captions"].items():
            rows.setdefault(key, []).append(record)
    print(f"\n### Feature captions ({model_path.name}, {threads} threads; load {load_s:.2f} s)\n")
    print("| key | captions | model's rewrite kept | template fallback | mean tries | median s | max s |")
    print("|---|---|---|---|---|---|---|")
    for key, records in rows.items():
        seconds = [r.get("seconds", 0.0) for r in records]
        kept = sum(r["path"] == "llm" for r in records)
        tries = statistics.mean(r.get("attempts", 0) for r in records)
        print(f"| {key} | {len(records)} | {kept} | {len(records) - kept} | {tries:.1f} | "
              f"{statistics.median(seconds):.2f} | {max(seconds):.2f} |")
    model.close()


def bench_flamingo(model_path: Path, mmproj: Path, audio_path: Path, threads: int, gpu_layers: int) -> None:
    from mirflow.audio import load_audio
    from mirflow.captions import flamingo

    params = flamingo.FlamingoParams(gpu_layers=gpu_layers)
    start = time.perf_counter()
    model = flamingo.load_flamingo(str(model_path), str(mmproj), params, threads=threads)
    load_s = time.perf_counter() - start
    signal = load_audio(audio_path)
    start = time.perf_counter()
    result = flamingo.caption_track(model, signal, params)
    total_s = time.perf_counter() - start
    audio = result.meta["audio"]
    print(f"\n### Music Flamingo ({model_path.name}; load {load_s:.1f} s; {audio_path.name}, "
          f"{signal.duration_s:.0f} s; build GPU offload: {model.chat.gpu_offload_supported})\n")
    print(f"audio prefix: {audio['windows']} windows, {audio['audio_tokens']} embeddings, "
          f"{audio['encode_seconds']:.2f} s (once per track); total {total_s:.1f} s "
          f"= {signal.duration_s / total_s:.2f}x realtime\n")
    print("| prompt | tokens | seconds | tokens/s | stop |")
    print("|---|---|---|---|---|")
    for key, record in result.meta["captions"].items():
        rate = record["generated_tokens"] / record["seconds"] if record["seconds"] else float("nan")
        print(f"| {key} | {record['generated_tokens']} | {record['seconds']:.2f} | {rate:.1f} | {record['stop']} |")
    model.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "llm" / "SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--fetch", action="store_true", help="fetch the model through the registry if missing")
    parser.add_argument("--tracks", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--flamingo-model", type=Path)
    parser.add_argument("--mmproj", type=Path)
    parser.add_argument("--audio", type=Path)
    parser.add_argument("--gpu-layers", type=int, default=-1)
    args = parser.parse_args(argv)

    if not args.model.is_file() and args.fetch:
        from mirflow.models import fetch_model_file, load_manifest

        (mf,) = load_manifest()["smollm2_135m_instruct"].files
        fetch_model_file(mf, args.model)
    if not args.model.is_file():
        print(f"model file {args.model} is missing: run `make models` or pass --fetch", file=sys.stderr)
        return 2
    bench_feature_captions(args.model, args.tracks, args.threads)
    if args.flamingo_model:
        if not (args.mmproj and args.audio):
            print("--flamingo-model needs --mmproj and --audio", file=sys.stderr)
            return 2
        bench_flamingo(args.flamingo_model, args.mmproj, args.audio, args.threads, args.gpu_layers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
