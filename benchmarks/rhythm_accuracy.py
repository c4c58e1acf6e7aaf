"""Accuracy of the rhythm family against ground truth; prints Markdown tables.

Usage (from the repository root)::

    PYTHONPATH=scripts .venv/bin/python benchmarks/rhythm_accuracy.py [--shared ../shared]
        [--beat-method downbeat_dbn] [--compare-methods] [--onsets]

Data sets (the ones under ../shared are skipped with a note when absent):

* the demo songs (``mirflow.demo``: every song of DEMO_SONGS and LOOSE_FILES,
  rendered in memory at 44.1 kHz, exact beats/downbeats/tempo);
* the madmom sample (``audio/gt/madmom/sample.wav`` with ``sample.beats``,
  hand-annotated beats with bar positions, and ``sample.tempo``: 87.5 BPM,
  weight 0.7, or 175 BPM);
* MDB Drums (``audio/gt/mdbdrums``): the four complete tracks as full mix
  (``*_MIX.flac``) and every drum-only track (``*_Drum.flac``), against
  ``annotations/beats/<track>_MIX.beats`` (time, beat-in-bar; 1 = downbeat).

Metrics: beat and downbeat F-measure (``mir_eval.beat.f_measure``, +-70 ms);
tempo Acc1 (the ``bpm`` key within 4 % of the reference tempo) and Acc2 (the
same allowing factors 2, 3, 1/2 and 1/3). The MDB reference tempo is 60 / the
median annotated inter-beat interval. ``--compare-methods`` adds the mean beat
and downbeat F of each ``beat_method``; ``--onsets`` adds onset F-measure
(+-50 ms) of the onset detector against MDB's drum-onset annotations, for
madmom's CNN (used) and librosa's spectral flux (the old tool's detector).
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from mirflow.audio import AudioSignal, load_audio  # noqa: E402
from mirflow.features import rhythm as R  # noqa: E402

TEMPO_TOLERANCE = 0.04
ACC2_FACTORS = (1.0, 2.0, 3.0, 0.5, 1.0 / 3.0)


def acc1(estimate: float | None, reference: float) -> bool:
    """Estimate within 4 % of the reference tempo."""
    return estimate is not None and abs(estimate / reference - 1.0) <= TEMPO_TOLERANCE


def acc2(estimate: float | None, reference: float) -> bool:
    """Estimate within 4 % of the reference tempo times 1, 2, 3, 1/2 or 1/3."""
    return estimate is not None and any(abs(estimate / (f * reference) - 1.0) <= TEMPO_TOLERANCE
                                        for f in ACC2_FACTORS)


def demo_tracks():
    from mirflow.demo import DEMO_SONGS, LOOSE_FILES, render_song

    for spec in list(DEMO_SONGS) + [loose.song for loose in LOOSE_FILES]:
        song = render_song(spec)
        t = song.truth
        yield ("demo", spec.song_id, AudioSignal(song.mix, song.sample_rate),
               np.asarray(t["beats"]), np.asarray(t["downbeats"]), float(t["tempo_bpm"]))


def madmom_tracks(shared: Path):
    base = shared / "audio" / "gt" / "madmom"
    wav = base / "sample.wav"
    if not wav.exists():
        print(f"note: {wav} missing, madmom sample skipped", file=sys.stderr)
        return
    ann = np.loadtxt(base / "sample.beats", comments="#")
    tempo = np.loadtxt(base / "sample.tempo", comments="#")
    yield ("madmom", "sample.wav", load_audio(wav), ann[:, 0], ann[ann[:, 1] == 1, 0], float(np.atleast_1d(tempo)[0]))


def mdb_tracks(shared: Path):
    base = shared / "audio" / "gt" / "mdbdrums"
    if not base.exists():
        print(f"note: {base} missing, MDB Drums skipped", file=sys.stderr)
        return
    files = sorted(glob.glob(str(base / "audio" / "MusicDelta_*" / "*_MIX.flac")))
    files += sorted(glob.glob(str(base / "audio" / "MusicDelta_*" / "*_Drum.flac")))
    files += sorted(glob.glob(str(base / "audio" / "drum_only" / "*_Drum.flac")))
    for f in files:
        name = os.path.basename(f)[: -len(".flac")]
        track = name.rsplit("_", 1)[0]
        ann = np.loadtxt(base / "annotations" / "beats" / f"{track}_MIX.beats")
        tempo = 60.0 / float(np.median(np.diff(ann[:, 0])))
        yield ("mdb", name.replace("MusicDelta_", ""), load_audio(f), ann[:, 0], ann[ann[:, 1] == 1, 0], tempo)


def evaluate(tracks, params):
    import mir_eval

    rows = []
    for corpus, name, signal, beats, downbeats, tempo in tracks:
        start = time.process_time()
        result, grids = R.analyse_rhythm(signal, params)
        cpu = time.process_time() - start
        v = result.values
        rows.append({
            "corpus": corpus, "track": name, "duration": signal.duration_s, "cpu": cpu,
            "beat_f": mir_eval.beat.f_measure(beats, grids.beats),
            "downbeat_f": mir_eval.beat.f_measure(downbeats, grids.downbeats) if downbeats.size else None,
            "ref_bpm": tempo, "bpm": v.get("bpm"), "bpm_madmom": v.get("bpm_madmom"),
            "bpm_essentia": v.get("bpm_essentia"), "bpb": v.get("beats_per_bar"),
            "defined": v.get("bpm_is_defined"), "contrast": result.meta.get("beat_contrast"),
        })
    return rows


def _fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def print_table(rows):
    print("| corpus | track | dur s | beat F | downbeat F | ref BPM | bpm | Acc1 | Acc2 | bpm_madmom | "
          "bpm_essentia | beats/bar | defined | contrast |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['corpus']} | {r['track']} | {r['duration']:.1f} | {r['beat_f']:.3f} | {_fmt(r['downbeat_f'])} | "
              f"{r['ref_bpm']:.2f} | {_fmt(r['bpm'], '.2f')} | {int(acc1(r['bpm'], r['ref_bpm']))} | "
              f"{int(acc2(r['bpm'], r['ref_bpm']))} | {_fmt(r['bpm_madmom'], '.2f')} | "
              f"{_fmt(r['bpm_essentia'], '.2f')} | {_fmt(r['bpb'], 'd')} | {_fmt(r['defined'], 'd')} | "
              f"{_fmt(r['contrast'], '.1f')} |")
    print()
    print("| corpus | tracks | mean beat F | mean downbeat F | Acc1 bpm | Acc2 bpm | Acc1 bpm_madmom | "
          "Acc1 bpm_essentia |")
    print("|---|---|---|---|---|---|---|---|")
    groups = sorted({r["corpus"] for r in rows}) + ["all"]
    for g in groups:
        sel = [r for r in rows if g == "all" or r["corpus"] == g]
        dfs = [r["downbeat_f"] for r in sel if r["downbeat_f"] is not None]
        print(f"| {g} | {len(sel)} | {np.mean([r['beat_f'] for r in sel]):.3f} | "
              f"{np.mean(dfs) if dfs else float('nan'):.3f} | "
              f"{np.mean([acc1(r['bpm'], r['ref_bpm']) for r in sel]):.3f} | "
              f"{np.mean([acc2(r['bpm'], r['ref_bpm']) for r in sel]):.3f} | "
              f"{np.mean([acc1(r['bpm_madmom'], r['ref_bpm']) for r in sel]):.3f} | "
              f"{np.mean([acc1(r['bpm_essentia'], r['ref_bpm']) for r in sel]):.3f} |")
    print()


def onset_table(shared: Path):
    import librosa
    import mir_eval

    from mirflow.features import rhythm_detectors as det

    base = shared / "audio" / "gt" / "mdbdrums"
    if not base.exists():
        print(f"note: {base} missing, onset table skipped", file=sys.stderr)
        return
    p = R.RhythmParams()
    files = sorted(glob.glob(str(base / "audio" / "MusicDelta_*" / "*.flac")))
    files += sorted(glob.glob(str(base / "audio" / "drum_only" / "*_Drum.flac")))
    print("| track | madmom CNN onset F | librosa flux F (backtrack) | librosa flux F (no backtrack) |")
    print("|---|---|---|---|")
    scores = []
    for f in files:
        name = os.path.basename(f)[: -len(".flac")]
        track = name.rsplit("_", 1)[0]
        ref = np.unique(np.round([float(line.split()[0]) for line in
                                  open(base / "annotations" / "class" / f"{track}_class.txt") if line.strip()], 3))
        signal = load_audio(f)
        mono = signal.mono()
        samples, _ = det.resample_for_madmom(mono, signal.sample_rate)
        cnn, _ = det.madmom_onsets(samples, p)
        env = librosa.onset.onset_strength(y=mono, sr=signal.sample_rate, hop_length=512)
        row = [mir_eval.onset.f_measure(ref, cnn, window=0.05)[0]]
        for backtrack in (True, False):
            frames = librosa.onset.onset_detect(onset_envelope=env, sr=signal.sample_rate, hop_length=512,
                                                backtrack=backtrack)
            times = librosa.frames_to_time(frames, sr=signal.sample_rate, hop_length=512)
            row.append(mir_eval.onset.f_measure(ref, times, window=0.05)[0])
        scores.append(row)
        print(f"| {name.replace('MusicDelta_', '')} | {row[0]:.3f} | {row[1]:.3f} | {row[2]:.3f} |")
    m = np.mean(scores, axis=0)
    print(f"| **mean ({len(scores)})** | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} |")
    print()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--beat-method", default=R.RhythmParams().beat_method, choices=R.BEAT_METHODS)
    parser.add_argument("--compare-methods", action="store_true", help="also run every beat_method")
    parser.add_argument("--onsets", action="store_true", help="also score onsets on MDB Drums")
    args = parser.parse_args(argv)

    def all_tracks():
        yield from demo_tracks()
        yield from madmom_tracks(args.shared)
        yield from mdb_tracks(args.shared)

    print(f"## beat_method = {args.beat_method}\n")
    rows = evaluate(all_tracks(), R.RhythmParams(beat_method=args.beat_method))
    print_table(rows)
    if args.compare_methods:
        print("## beat_method comparison (means over all tracks)\n")
        print("| beat_method | mean beat F | mean downbeat F | downbeats on a beat | CPU s per audio s |")
        print("|---|---|---|---|---|")
        for method in R.BEAT_METHODS:
            rows_m = rows if method == args.beat_method else evaluate(all_tracks(), R.RhythmParams(beat_method=method))
            dfs = [r["downbeat_f"] for r in rows_m if r["downbeat_f"] is not None]
            rtf = sum(r["cpu"] for r in rows_m) / sum(r["duration"] for r in rows_m)
            print(f"| {method} | {np.mean([r['beat_f'] for r in rows_m]):.3f} | {np.mean(dfs):.3f} | "
                  f"{'always' if method == 'downbeat_dbn' else 'not guaranteed'} | {rtf:.4f} |")
        print()
    if args.onsets:
        print("## onset detector on MDB Drums drum-onset annotations (+-50 ms)\n")
        onset_table(args.shared)
    return 0


if __name__ == "__main__":
    sys.exit(main())
