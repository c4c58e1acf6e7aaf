"""Job adapters of the ``context`` families: they read the job's inputs, call the computing modules and
write the family's extra outputs (grids, MIDI). Each returns the family's FeatureResult.

A family with a parameter class (``params`` in mirflow.registry) gets its typed parameter object, built by
``runner.compute_family``; the others get their config section as a dict."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .modelcache import cached_model
from .result import FeatureResult
from .runner import JobContext

if TYPE_CHECKING:  # the typed families' parameters, built by runner.compute_family from their config sections
    from .aesthetics import AestheticsParams
    from .captions.feature_captions import FeatureCaptionsParams
    from .captions.flamingo import FlamingoParams
    from .classifiers import ClassifiersParams
    from .features.harmony import HarmonyParams
    from .features.rhythm import RhythmParams
    from .metadata import MetadataParams
    from .transcription.bass import BassParams
    from .transcription.drums import DrumsParams


def read_beats(ctx: JobContext) -> np.ndarray | None:
    """The track's beat grid when the job has one as input (``beats``), else None."""
    if "beats" in ctx.grids:
        return ctx.grids["beats"]
    if not ctx.has("beats"):
        return None
    from .features.rhythm import read_times

    return read_times(ctx.path("beats"))


def drums_family(ctx: JobContext, params: DrumsParams) -> FeatureResult:
    """ADTOF on the drums stem (else the full mix): ``drums_adtof.mid`` plus hit counts and densities."""
    from .separation import apply_gpu_env_defaults

    apply_gpu_env_defaults()  # before torch is imported
    from .transcription import adtof
    from .transcription.drums import compute_drums

    (weights,) = ctx.model_files()
    device = params.device
    model = cached_model("adtof", weights, lambda: adtof.load_model(weights, device=device), device)
    source = "drums" if ctx.has("drums") else "audio"
    result = compute_drums(model, ctx.audio(source), params,
                           input_name="drums" if source == "drums" else "full_mix",
                           midi_path=ctx.outputs["midi"], beats=read_beats(ctx))
    result.meta.update({"model_sha256": model.sha256, "device": model.device,
                        "tempo_map": "from the beat grid" if ctx.has("beats") else "none (120 BPM time base)"})
    return result


def bass_note_statistics(pitches: np.ndarray, duration_s: float) -> FeatureResult:
    """Summary keys of a transcribed bass line.

    Parameters
    ----------
    pitches : np.ndarray
        MIDI note numbers of the notes.
    duration_s : float
        Length of the analysed signal, s.
    """
    result = FeatureResult()
    result.set("bass_note_count", int(len(pitches)))
    result.set("bass_note_density", round(len(pitches) / duration_s, 4) if duration_s > 0 else 0.0)
    if len(pitches):
        result.set("bass_pitch_median", float(np.median(pitches)))
        result.set("bass_pitch_range", int(np.max(pitches) - np.min(pitches)))
    else:
        result.mark_absent("bass_pitch_median", "no bass notes transcribed")
        result.mark_absent("bass_pitch_range", "no bass notes transcribed")
    return result


def load_bass_model(threads: int):
    """Basic Pitch's bundled ONNX model, loaded once per process (see mirflow.modelcache)."""
    from .transcription import bass

    path = bass.bundled_model_path()
    return cached_model("basic_pitch", path, lambda: bass.load_model(path, threads=threads), threads)


def bass_family(ctx: JobContext, params: BassParams) -> FeatureResult:
    """Basic Pitch (shipped ONNX model) on the bass stem: ``bass_basicpitch.mid`` plus note statistics."""
    from .transcription import bass

    signal = ctx.audio("bass")
    if signal.is_digital_silence():
        result = FeatureResult()
        result.mark_all_absent(
            ("bass_note_count", "bass_note_density", "bass_pitch_median", "bass_pitch_range"), "silent stem"
        )
        from .jsonio import write_bytes_atomic
        from .transcription.midi import midi_file_bytes

        write_bytes_atomic(ctx.outputs["midi"], midi_file_bytes([], channel=0, program=33, track_name="bass"))
        result.meta["input"] = "bass stem (silent: empty MIDI written)"
        return result
    model = load_bass_model(ctx.threads)
    transcription = bass.transcribe(model, signal, params)
    bass.write_bass_midi(ctx.outputs["midi"], transcription, beats=read_beats(ctx))
    pitches = np.array([n.pitch for n in transcription.notes], dtype=float)
    result = bass_note_statistics(pitches, signal.duration_s)
    result.meta.update(transcription.meta)
    result.meta["input"] = "bass stem"
    return result


def rhythm_family(ctx: JobContext, settings: RhythmParams) -> FeatureResult:
    """Beats, downbeats and onsets of the full mix: the three grid files plus the rhythm keys."""
    from .features.rhythm import analyse_rhythm, format_times
    from .jsonio import write_text_atomic

    result, grids = analyse_rhythm(ctx.audio("audio"), settings)
    write_text_atomic(ctx.outputs["beats"], format_times(grids.beats))
    write_text_atomic(ctx.outputs["downbeats"], format_times(grids.downbeats))
    write_text_atomic(ctx.outputs["onsets"], format_times(grids.onsets))
    return result


def rhythm_stems_family(ctx: JobContext, settings: RhythmParams) -> FeatureResult:
    """Per-stem onset density, syncopation against the full-mix beat grid, complexity and evenness."""
    from .features.rhythm import analyse_stem_rhythm
    from .runner import for_each_stem

    beats = read_beats(ctx)
    if beats is None:  # the family declares needs=("beats",), so the workflow always gives one
        raise ValueError("rhythm_stems needs the track's beat grid (a 'beats' input)")
    return for_each_stem(ctx, "rhythm_stems",
                         lambda signal, stem: analyse_stem_rhythm(signal, beats, settings, stem))


def harmony_family(ctx: JobContext, settings: HarmonyParams) -> FeatureResult:
    """Chroma/HPCP/TIV/key from the harmonic stems (bass + other + vocals) when the track has stems,
    else from the full mix (``_meta.details.input`` says which)."""
    from .features.harmony import compute_harmony

    stems = {name: ctx.audio(name) for name in settings.harmonic_stems if ctx.has(name)}
    return compute_harmony(stems if stems else ctx.audio("audio"), settings)


def metadata_family(ctx: JobContext, settings: MetadataParams) -> FeatureResult:
    """Tags and stream facts of the input file (read only; nothing is looked up on the network)."""
    from .metadata import compute_metadata

    return compute_metadata(ctx.path("audio"), settings)


def classifiers_family(ctx: JobContext, params: ClassifiersParams) -> FeatureResult:
    """Essentia classifiers with every model present (each loaded once); mean embeddings as .npy files."""
    import os

    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # TF 2.5 otherwise takes the whole GPU
    from .classifiers import classify, load_classifiers, model_paths_from_files, write_embedding_npy

    paths = model_paths_from_files(ctx.model_files())
    models = cached_model("essentia_classifiers", sorted(paths.values()),
                          lambda: load_classifiers(paths, threads=ctx.threads), ctx.threads)
    result, embeddings = classify(models, ctx.audio("audio"), params)
    out = Path(ctx.outputs["embeddings"])
    out.mkdir(parents=True, exist_ok=True)
    for name, vector in embeddings.items():
        write_embedding_npy(str(out / f"{name}.npy"), vector)
    result.meta["embedding_files"] = sorted(f"{name}.npy" for name in embeddings)
    return result


def aesthetics_family(ctx: JobContext, params: AestheticsParams) -> FeatureResult:
    """Audiobox Aesthetics (CE, CU, PC, PQ) of the full mix, model loaded once."""
    from .separation import apply_gpu_env_defaults

    apply_gpu_env_defaults()  # before torch is imported
    from .aesthetics import load_aesthetics_model, predict_aesthetics

    (checkpoint,) = ctx.model_files()
    device = params.device
    loaded = cached_model("audiobox_aesthetics", checkpoint, lambda: load_aesthetics_model(checkpoint, device), device)
    return predict_aesthetics(loaded, ctx.audio("audio"), params)


def track_features(ctx: JobContext) -> dict:
    """The values of the track's other families, from the partial JSONs given as ``features_<family>`` inputs."""
    from .jsonio import read_json

    values = {}
    for name, path in ctx.inputs.items():
        if name.startswith("features_"):
            values.update({k: v for k, v in read_json(path).items() if k != "_meta"})
    return values


def captions_feature_family(ctx: JobContext, params: FeatureCaptionsParams) -> FeatureResult:
    """Captions from the computed features (SmolLM2 through llama.cpp), verified against them."""
    from .captions.feature_captions import caption_from_features, load_caption_model
    from .catalogue import load_catalogue

    (model_path,) = ctx.model_files()
    model = load_caption_model(model_path, params, ctx.threads)
    try:
        result = caption_from_features(model, track_features(ctx), params)
    finally:
        model.close()
    if not params.revise_flamingo:
        for key in load_catalogue().keys_for_family("captions_feature"):
            if key.startswith("music_flamingo_short_") and key not in result.values:
                result.mark_absent(key, "not requested (captions_feature.revise_flamingo is off)")
    return result


def captions_flamingo_family(ctx: JobContext, params: FlamingoParams) -> FeatureResult:
    """Music Flamingo captions: the audio is encoded once and every configured prompt reuses it."""
    from .captions.flamingo import caption_track, load_flamingo

    files = ctx.model_files()
    mmproj = next(f for f in files if "mmproj" in Path(f).name)
    text_model = next(f for f in files if f != mmproj)
    model = load_flamingo(text_model, mmproj, params, ctx.threads)
    try:
        return caption_track(model, ctx.audio("audio"), params, track_features(ctx))
    finally:
        model.close()
