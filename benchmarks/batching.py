"""Batching at corpus scale: `make run`'s driver over a fake collection of N tracks.

Builds a fake corpus of N tracks by hard-linking one short FLAC (N directory entries, one file's data), then
runs ``python -m mirflow.run`` (what ``make run`` calls) over it and prints, per batch (each its own Snakemake
invocation over ``--config batch=i/n``), the jobs, the wall time and the peak resident memory of Snakemake
and its jobs, plus the total and the peak over all batches.

    python benchmarks/batching.py --tracks 100000 --batch-size 5000 --dry-run          # DAG of every batch
    python benchmarks/batching.py --tracks 1000 --batch-size 250                       # real run, trivial set
    python benchmarks/batching.py --tracks 100000 --batch-size 5000 --dry-run --families default --only-batch 1

``--families trivial`` (default) keeps only ``metadata`` and switches the crops off (2 jobs per track: the
metadata family and the merge); ``default`` keeps the shipped config (every family whose models are present).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from mirflow.registry import FAMILIES  # noqa: E402


def build_tree(root: Path, tracks: int, seconds: float = 2.0) -> float:
    """``root/music/aNNN/tNNNNNN.flac``: ``tracks`` hard links to short FLACs; returns the seconds it took.

    One source file per 50,000 links (ext4 allows 65,000 links to one inode).
    """
    started = time.perf_counter()
    music = root / "music"
    existing = sum(1 for _ in music.rglob("*.flac")) if music.is_dir() else 0
    if existing != tracks:
        shutil.rmtree(music, ignore_errors=True)
        sr = 22050
        t = np.arange(int(sr * seconds)) / sr
        x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        for i in range(tracks):
            source = root / f"source{i // 50000}.flac"
            if i % 50000 == 0:
                sf.write(source, np.stack([x, x], axis=1), sr)
            folder = music / f"a{i // 1000:03d}"
            if i % 1000 == 0:
                folder.mkdir(parents=True, exist_ok=True)
            os.link(source, folder / f"t{i:06d}.flac")
    return time.perf_counter() - started


def write_config(root: Path, families: str) -> None:
    shutil.rmtree(root / "config", ignore_errors=True)
    shutil.copytree(REPO / "config", root / "config")
    if families == "trivial":
        path = root / "config" / "config.yaml"
        text = path.read_text()
        for fam in FAMILIES:
            if fam != "metadata":
                text, n = re.subn(rf"^  {fam}: true$", f"  {fam}: false", text, flags=re.MULTILINE)
                if n == 0:  # a family config.yaml does not name is on: switch it off explicitly
                    text = re.sub(r"^families:$", f"families:\n  {fam}: false", text, flags=re.MULTILINE)
        text = re.sub(r"^(crops:\n  enabled:) true", r"\1 false", text, flags=re.MULTILINE)
        path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--dry-run", action="store_true", help="only build each batch's DAG (snakemake -n)")
    parser.add_argument("--families", choices=("trivial", "default"), default="trivial")
    parser.add_argument("--cores", default="2")
    parser.add_argument("--workdir", default="/tmp/mirflow-batching")
    parser.add_argument("--only-batch", type=int, default=None,
                        help="dry-run this one batch (snakemake -n --config batch=i/n) instead of the driver")
    args = parser.parse_args()
    root = Path(args.workdir)
    root.mkdir(parents=True, exist_ok=True)
    built = build_tree(root, args.tracks)
    write_config(root, args.families)
    print(f"fake corpus: {args.tracks} tracks (hard links) in {root / 'music'} ({built:.1f} s); "
          f"families: {args.families}; batch size {args.batch_size}; {'dry run' if args.dry_run else 'real run'}",
          flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "scripts"), os.environ.get("PYTHONPATH", "")])}
    if args.only_batch:
        n = -(-args.tracks // args.batch_size)
        cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "workflow" / "Snakefile"), "--cores",
               args.cores, "--config", "input_dir=music", "results_dir=results", f"batch={args.only_batch}/{n}"]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        total = re.search(r"^total\s+(\d+)", out, re.MULTILINE)
        print(f"batch {args.only_batch}/{n} dry run: exit {os.waitstatus_to_exitcode(status)}, "
              f"{total[1] if total else '?'} jobs in {time.perf_counter() - started:.0f} s, "
              f"peak memory {usage.ru_maxrss / 1024 ** 2:.2f} GB")
        return os.waitstatus_to_exitcode(status)
    cmd = [sys.executable, "-m", "mirflow.run", "--batch-size", str(args.batch_size), "-s",
           str(REPO / "workflow" / "Snakefile"), "--cores", args.cores, *(["-n"] if args.dry_run else []),
           "--config", "input_dir=music", "results_dir=results"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks, times = [], []
    for line in proc.stdout:
        line = line.rstrip("\n")
        match = re.match(r"^batch (\d+/\d+): (\d+)/(\d+) jobs.* in (\d+) s, peak memory ([\d.]+) GB", line)
        if match:
            peaks.append(float(match[5]))
            times.append(int(match[4]))
            print(f"  {line}  [{time.perf_counter() - started:.0f} s since start]", flush=True)
        elif line.startswith(("mirflow: about", "batch ", "corpus", "  tracks:", "  processed:", "  failed jobs:")):
            print(f"  {line}", flush=True)
    code = proc.wait()
    total = time.perf_counter() - started
    if times:
        print(f"driver exit code {code}; {len(times)} batch(es) in {total:.0f} s (mean {sum(times) / len(times):.0f} s"
              f" per batch); peak memory of Snakemake and its jobs: {max(peaks):.2f} GB")
    else:
        print(f"driver exit code {code} in {total:.0f} s (one invocation, no batches)")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
