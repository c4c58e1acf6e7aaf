"""Accuracy of mirflow's ADTOF Frame_RNN drum transcription.

Prints three tables (onset F-measure, mir_eval.onset.f_measure, 50 ms window):

1. ADTOF's own test clip (``audio/gt/adtof_test/test.wav``) against ``test.mid``,
   the transcription the ADTOF-PyTorch port ships (a model output, not a human
   annotation): how closely this implementation reproduces the port, per class.
2. MDB Drums drum-only recordings (13 tracks with audio) against the human
   class annotations (KD->kick/BD, SD->snare/SD, TT->toms/TT, HH->hihat/HH,
   CY->cymbals/CY+RD; OT is not one of ADTOF's classes and is ignored).
   Per class: true positives, false positives and false negatives are summed
   over all tracks, then P/R/F computed from the sums. "all" pools every
   class of every track the same way (micro-average, ADTOF's "sum F").
3. The same for the 4 MDB full mixes (drums with the other instruments).

With ``--compare-port`` every table is repeated with an emulation of the
ADTOF-PyTorch port (its filterbank spaced from exactly 20 Hz instead of madmom's
A440-aligned bands, zero padding in the frequency max-pooling, edge-padded peak
picking), which reproduces ``test.mid`` exactly.

Usage::

    PYTHONPATH=scripts .venv/bin/python benchmarks/drum_transcription_accuracy.py [--device cpu]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from mirflow.audio import load_audio  # noqa: E402
from mirflow.transcription import adtof, drums  # noqa: E402

SHARED = REPO.parent / "shared"
WINDOW_S = 0.05
MDB_TO_CLASS = {"KD": "kick", "SD": "snare", "TT": "toms", "HH": "hihat", "CY": "cymbals"}


def f_counts(reference: np.ndarray, estimate: np.ndarray, window: float = WINDOW_S) -> tuple[int, int, int]:
    """(TP, FP, FN) of an onset estimate, with mir_eval's one-to-one matching."""
    import mir_eval

    reference, estimate = np.sort(reference), np.sort(estimate)
    if reference.size == 0 or estimate.size == 0:
        return 0, int(estimate.size), int(reference.size)
    tp = len(mir_eval.util.match_events(reference, estimate, window))
    return tp, int(estimate.size) - tp, int(reference.size) - tp


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def read_mdb_class_annotation(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {name: [] for name in drums.CLASS_NAMES}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] in MDB_TO_CLASS:
            out[MDB_TO_CLASS[parts[1]]].append(float(parts[0]))
    return {k: np.array(sorted(v)) for k, v in out.items()}


def read_reference_midi(path: Path) -> dict[str, np.ndarray]:
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(str(path))
    notes = [n for inst in midi.instruments for n in inst.notes]
    return {c.name: np.array(sorted(n.start for n in notes if n.pitch == c.midi_note)) for c in drums.DRUM_CLASSES}


def transcribe_file(model, path: Path, port: bool = False) -> tuple[dict[str, np.ndarray], float]:
    """Hits of one file; ``port`` uses the port's filterbank and peak picking
    (pair it with a model loaded with ``pool_padding="zeros"``)."""
    signal = load_audio(path)
    spec = adtof.log_filtered_spectrogram(signal.mono(), signal.sample_rate,
                                          filterbank=adtof.port_filterbank() if port else None)
    act = adtof.predict_activations(model, spec)
    return drums.hits_from_activations(act, picker=drums.pick_peaks_port if port else None), signal.duration_s


def table(title: str, rows: list[tuple[str, dict[str, tuple[int, int, int]]]]) -> dict[str, float]:
    """Print per-track F and pooled per-class P/R/F; returns pooled F per class and "all"."""
    names = list(drums.CLASS_NAMES)
    print(f"\n## {title}\n")
    print("| track | " + " | ".join(names) + " | all |")
    print("|---|" + "---:|" * (len(names) + 1))
    pooled = {n: np.zeros(3, int) for n in names}
    for track, counts in rows:
        cells = []
        for n in names:
            pooled[n] += counts[n]
            tp, fp, fn = counts[n]
            cells.append("-" if tp + fp + fn == 0 else f"{100 * prf(tp, fp, fn)[2]:.1f}")
        total = np.sum([counts[n] for n in names], axis=0)
        cells.append(f"{100 * prf(*total)[2]:.1f}")
        print(f"| {track} | " + " | ".join(cells) + " |")
    all_counts = np.sum([pooled[n] for n in names], axis=0)
    scores = {}
    line_f, line_p, line_r, line_n = [], [], [], []
    for n in list(names) + ["all"]:
        c = all_counts if n == "all" else pooled[n]
        p, r, f = prf(*c)
        scores[n] = f
        line_f.append(f"**{100 * f:.1f}**")
        line_p.append(f"{100 * p:.1f}")
        line_r.append(f"{100 * r:.1f}")
        line_n.append(f"{c[0] + c[2]}")
    print("| **pooled F** | " + " | ".join(line_f) + " |")
    print("| pooled P | " + " | ".join(line_p) + " |")
    print("| pooled R | " + " | ".join(line_r) + " |")
    print("| reference onsets | " + " | ".join(line_n) + " |")
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default=str(SHARED), help="the shared reference-data folder")
    parser.add_argument("--weights", default=None, help="Frame_RNN weights (default: <shared>/models/adtof/...)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compare-port", action="store_true",
                        help="also run an emulation of the ADTOF-PyTorch port (which made test.mid)")
    args = parser.parse_args(argv)
    shared = Path(args.shared)
    weights = Path(args.weights) if args.weights else shared / "models/adtof/adtof_frame_rnn_pytorch_weights.pth"
    for needed in (weights, shared / "audio/gt/adtof_test/test.wav", shared / "audio/gt/mdbdrums"):
        if not needed.exists():
            print(f"missing: {needed}")
            return 2
    variants = [("original ADTOF processing (madmom filterbank, TF max-pool padding, madmom peak picking)",
                 adtof.load_model(weights, args.device), False)]
    if args.compare_port:
        variants.append(("ADTOF-PyTorch port emulation (port filterbank, zero max-pool padding, port peak picking)",
                         adtof.load_model(weights, args.device, pool_padding="zeros"), True))
    print(f"device: {variants[0][1].device}; weights sha256 {variants[0][1].sha256[:16]}...; "
          f"window {WINDOW_S * 1000:.0f} ms")
    started = time.perf_counter()

    reference = read_reference_midi(shared / "audio/gt/adtof_test/test.mid")
    for variant, model, port in variants:
        hits, _ = transcribe_file(model, shared / "audio/gt/adtof_test/test.wav", port)
        table(f"ADTOF test clip vs the port's test.mid; {variant}",
              [("test.wav", {n: f_counts(reference[n], hits[n]) for n in drums.CLASS_NAMES})])

    mdb = shared / "audio/gt/mdbdrums"
    drum_only = sorted(mdb.glob("audio/drum_only/*_Drum.flac")) + sorted(mdb.glob("audio/MusicDelta_*/*_Drum.flac"))
    mixes = sorted(mdb.glob("audio/MusicDelta_*/*_MIX.flac"))
    for variant, model, port in variants:
        for label, files in (("drum-only", drum_only), ("full mix", mixes)):
            rows = []
            for path in sorted(files, key=lambda p: p.name):
                track = path.name.split("_")[1]
                reference = read_mdb_class_annotation(mdb / f"annotations/class/MusicDelta_{track}_class.txt")
                hits, _ = transcribe_file(model, path, port)
                rows.append((track, {n: f_counts(reference[n], hits[n]) for n in drums.CLASS_NAMES}))
            table(f"MDB Drums {label}, {len(rows)} tracks; {variant}", rows)
    print(f"\n(total {time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
