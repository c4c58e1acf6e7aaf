"""Key accuracy of the harmony family's two estimators; prints a Markdown table.

Usage (from the repository root)::

    PYTHONPATH=scripts .venv/bin/python benchmarks/key_accuracy.py [--shared ../shared] [--no-synthetic]

Estimators (both from ``mirflow.features.harmony.compute_harmony``):

* ``tonic``/``tonic_scale``: Essentia ``Key`` profile 'edmm' on the mean HPCP;
* ``key``: madmom's CNN key recogniser.

Metric: MIREX weighted key score (``mir_eval.key.weighted_score``: 1 same key,
0.5 perfect fifth above, 0.3 relative major/minor, 0.2 parallel, else 0),
averaged per data set, plus the share of exactly right keys.

Data sets with a known key (only these exist; madmom's ``audio/gt/madmom``
``*.key_recognition.txt`` files are a detector's output, not ground truth, and
``dummy.key`` belongs to no audio):

* the demo songs (``mirflow.demo``, DEMO_SONGS and LOOSE_FILES rendered in
  memory): analysed once from their harmonic stems (the pipeline's input) and
  once from the full mix;
* synthetic cadences: I-IV-V-I (minor: i-iv-V-i) twice, additive harmonic
  tones, in all 24 keys (disable with ``--no-synthetic``);
Real recordings under ``../shared/audio/real`` are reported but NOT scored,
because their keys are not established: ``librosa_brahms.ogg`` is Brahms'
Hungarian Dance No. 5, whose title says F# minor (the piano original) while
the well-known orchestration (Schmeling) is in G minor, and this recording is
orchestral; ``librosa_trumpet.ogg`` is "in F" per its source, mode unknown.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from mirflow.audio import AudioSignal, load_audio  # noqa: E402
from mirflow.features.harmony import compute_harmony, parse_key_label  # noqa: E402

SR = 44100
_FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def key_string(pitch_class: int, mode: str) -> str:
    """mir_eval key string such as "Eb major"."""
    return f"{_FLAT_NAMES[pitch_class % 12]} {mode}"


def estimates(result) -> tuple[str | None, str | None]:
    """(Essentia edmm estimate, madmom estimate) as mir_eval key strings; None when absent."""
    essentia = (key_string(result.values["tonic"], result.values["tonic_scale"])
                if "tonic" in result.values else None)
    madmom = key_string(*parse_key_label(result.values["key"])) if "key" in result.values else None
    return essentia, madmom


def _tone(midi: int, duration_s: float) -> np.ndarray:
    t = np.arange(int(duration_s * SR)) / SR
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    env = np.minimum(1.0, t / 0.01) * np.exp(-1.5 * t)
    return env * sum(0.6 ** (h - 1) * np.sin(2 * np.pi * f0 * h * t) for h in range(1, 7))


def cadence(tonic_pc: int, mode: str) -> np.ndarray:
    """The test suite's cadence: root below, root, third, fifth; 1 s per chord, 8 chords."""
    tonic = 57 + (tonic_pc - 9) % 12
    third = 3 if mode == "minor" else 4
    chords = [(0, third), (5, third), (7, 4), (0, third)] * 2
    return 0.08 * np.concatenate([sum(_tone(tonic + r + o, 1.0) for o in (-12, 0, th, 7))
                                  for r, th in chords]).astype(np.float32)


def datasets(shared: Path, synthetic: bool):
    """Yield (dataset, item name, reference key string, input for compute_harmony)."""
    from mirflow.demo import DEMO_SONGS, LOOSE_FILES, render_song

    for spec in list(DEMO_SONGS) + [loose.song for loose in LOOSE_FILES]:
        song = render_song(spec)
        reference = key_string(song.truth["key"]["pitch_class"], song.truth["key"]["mode"])
        stems = {name: AudioSignal(samples, song.sample_rate) for name, samples in song.stems.items()}
        yield "demo (stems)", spec.song_id, reference, stems
        yield "demo (full mix)", spec.song_id, reference, AudioSignal(song.mix, song.sample_rate)
    if synthetic:
        for pc in range(12):
            for mode in ("major", "minor"):
                yield ("synthetic cadences", key_string(pc, mode), key_string(pc, mode),
                       AudioSignal(cadence(pc, mode)[None, :], SR))


def main(argv=None) -> int:
    import mir_eval.key

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--no-synthetic", action="store_true")
    args = parser.parse_args(argv)

    rows = []
    start = time.time()
    for dataset, name, reference, data in datasets(args.shared, not args.no_synthetic):
        result = compute_harmony(data)
        essentia, madmom = estimates(result)
        scores = [mir_eval.key.weighted_score(reference, e) if e else 0.0 for e in (essentia, madmom)]
        rows.append((dataset, name, reference, essentia, madmom, *scores))

    print("| data set | item | reference | Essentia edmm | score | madmom CNN | score |")
    print("|---|---|---|---|---|---|---|")
    for dataset, name, reference, essentia, madmom, s_e, s_m in rows:
        if dataset != "synthetic cadences":
            print(f"| {dataset} | {name} | {reference} | {essentia} | {s_e:.1f} | {madmom} | {s_m:.1f} |")
    print()
    print("| data set | n | Essentia edmm: MIREX score | exact | madmom CNN: MIREX score | exact |")
    print("|---|---|---|---|---|---|")
    for dataset in dict.fromkeys(r[0] for r in rows):
        subset = [r for r in rows if r[0] == dataset]
        s_e = np.mean([r[5] for r in subset])
        s_m = np.mean([r[6] for r in subset])
        x_e = np.mean([r[5] == 1.0 for r in subset])
        x_m = np.mean([r[6] == 1.0 for r in subset])
        print(f"| {dataset} | {len(subset)} | {s_e:.3f} | {x_e:.0%} | {s_m:.3f} | {x_m:.0%} |")
    misses = [r for r in rows if r[0] == "synthetic cadences" and min(r[5], r[6]) < 1.0]
    if misses:
        print("\nSynthetic cadences not exactly right (reference: Essentia / madmom):")
        for _, _name, reference, essentia, madmom, _, _ in misses:
            print(f"- {reference}: {essentia} / {madmom}")

    unscored = (("librosa_brahms.ogg", "title: F# minor; orchestral versions are in G minor"),
                ("librosa_trumpet.ogg", "\"in F\" per its source, mode unknown"))
    print("\nReal recordings, key not established (not scored):")
    for file_name, note in unscored:
        path = args.shared / "audio" / "real" / file_name
        if not path.exists():
            print(f"- {file_name}: missing ({path})")
            continue
        essentia, madmom = estimates(compute_harmony(load_audio(path)))
        print(f"- {file_name} ({note}): Essentia edmm {essentia}, madmom CNN {madmom}")
    print(f"\n{len(rows)} analyses in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
