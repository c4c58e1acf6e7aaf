"""Every feature family the workflow knows: name, version, scope and producer.

This module is imported by the Snakefile at parse time, so it must stay free of
heavy imports (numpy at most; no scipy, no torch). The version of a family is part of its
rule's ``params``: bumping it makes Snakemake rerun exactly that family on every
track (Snakemake cannot see changes inside imported modules by itself).
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Parameter classes only: these modules import numpy at most (scipy lazily), see tests/test_registry_import.py.
from .aesthetics import AestheticsParams
from .captions.feature_captions import FeatureCaptionsParams
from .captions.flamingo import FlamingoParams
from .classifiers import ClassifiersParams
from .features.descriptors import DescriptorsParams
from .features.harmony import HarmonyParams, HarmonyStemsParams
from .features.loudness import LoudnessParams
from .features.multiband import MultibandParams
from .features.rhythm import RhythmParams
from .features.spectral import SpectralParams
from .features.timbral import TimbralParams
from .metadata import MetadataParams
from .transcription.bass import BassParams
from .transcription.drums import DrumsParams

#: Versions of the steps that are not feature families. Bump one when its outputs change for the same
#: inputs: Snakemake then reruns that step everywhere (the version is part of the rule's params).
STEP_VERSIONS = {
    "separate_stems": 1,
    "probe_audio": 1,
    "merge_info": 3,  # 2: resolved danceability/atonality (mirflow.resolved); 3: each input and reason once
    "crops": 6,   # 2: tail crops kept; 3: manifest paths relative to crops/; 4: AudioCraft sidecars; 5: resolved keys;
                  # 6: missing families' reasons once (mirflow.provenance)
}

#: Stem names, in the order Demucs produces them.
STEM_NAMES = ("drums", "bass", "other", "vocals")


@dataclass(frozen=True)
class Family:
    """One feature family: one partial JSON ``features/<name>.json`` per track.

    Attributes
    ----------
    name : str
        Family name, also the partial JSON's file name and the catalogue's ``family``.
    version : int
        Algorithm version. Bump it whenever the numbers this family writes change.
    scope : str
        ``"mix"`` (analyses the full mix) or ``"stems"`` (analyses every stem; keys
        carry a ``_<stem>`` suffix).
    settings : str
        Name of the config section holding this family's parameters (shared by a
        family and its ``_stems`` twin, which run the same algorithm).
    compute : str
        ``"module:function"`` computing the family for one signal, or ``""`` for
        families with their own job script.
    libraries : tuple of str
        Distribution names whose versions are recorded in ``_meta``.
    models : tuple of str
        Names in ``models/manifest.yaml`` the family needs; it is skipped when one is missing.
    needs : tuple of str
        Inputs beyond the full mix: ``"features"`` (the track's other partial JSONs), ``"stems"``
        (skipped for tracks without stems), ``"stem:<name>"``
        (skipped for tracks without that stem), ``"prefer:stems"`` / ``"prefer:stem:<name>"`` (used when the
        track has them, the full mix otherwise), ``"beats"`` (the track's beat grid from the rhythm family,
        used when that family is enabled).
    optional_models : tuple of str
        Models used when present; the keys they produce are absent (with the reason) otherwise.
    any_of_models : tuple of str
        The family is skipped unless at least one of these models is present.
    kind : str
        ``"signal"``: ``compute(signal, settings)`` per signal (mix, or each stem);
        ``"context"``: ``compute(ctx, settings)`` with the job's inputs and outputs (see runner.JobContext).
    lane : str
        ``"cpu"`` or ``"gpu"``. A GPU family is its own job holding the GPU slot (``resources: gpu=1``) and runs
        in the worker's GPU lane; CPU families of a track share one job (see the workflow's job layout).
    outputs : tuple of (str, str)
        Files the family writes besides its partial JSON: (role, path relative to the track's result folder,
        ``{name}`` standing for the track's name; a trailing ``/`` marks a folder).
    params : type or None
        Frozen dataclass of the family's parameters (fields made by :func:`mirflow.params.param`), shared by a
        family and its ``_stems`` twin. The family's compute gets an instance built from the ``settings``
        section (``mirflow.params.from_config``); ``None``: a family not yet converted gets the plain dict.
    """

    name: str
    version: int
    scope: str
    settings: str
    compute: str = ""
    libraries: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""
    models: tuple[str, ...] = field(default_factory=tuple)
    kind: str = "signal"
    needs: tuple[str, ...] = field(default_factory=tuple)
    optional_models: tuple[str, ...] = field(default_factory=tuple)
    any_of_models: tuple[str, ...] = field(default_factory=tuple)
    lane: str = "cpu"
    outputs: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    params: type | None = None

    @property
    def needs_stems(self) -> bool:
        return self.scope == "stems" or any(n == "stems" or n.startswith("stem:") for n in self.needs)

    @property
    def needed_stems(self) -> tuple[str, ...]:
        """Specific stems the family cannot run without (``stem:<name>`` in ``needs``)."""
        return tuple(n.split(":", 1)[1] for n in self.needs if n.startswith("stem:"))


def _pair(name: str, version: int, compute: str, libraries: tuple[str, ...], description: str,
          params: type | None = None):
    """A family and its per-stem twin: same algorithm, same version, same settings and parameter class."""
    return (
        Family(name, version, "mix", name, compute, libraries, description, params=params),
        Family(f"{name}_stems", version, "stems", name, compute, libraries, description + " (per stem)",
               params=params),
    )


_ESSENTIA_MODELS = (
    "essentia_discogs_effnet_bs64", "essentia_genre_discogs400", "essentia_mtg_jamendo_moodtheme",
    "essentia_mtg_jamendo_instrument", "essentia_danceability_effnet", "essentia_mood_aggressive_effnet",
    "essentia_mood_happy_effnet", "essentia_mood_relaxed_effnet", "essentia_mood_sad_effnet", "essentia_msd_musicnn",
    "essentia_danceability_musicnn", "essentia_mood_aggressive_musicnn", "essentia_mood_happy_musicnn",
    "essentia_mood_party_musicnn", "essentia_mood_relaxed_musicnn", "essentia_mood_sad_musicnn",
    "essentia_tonal_atonal_effnet", "essentia_tonal_atonal_musicnn",
)

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        *_pair("loudness", 1, "mirflow.features.loudness:compute_loudness", ("numpy", "scipy"),
               "Integrated loudness (BS.1770-4) and loudness range (EBU Tech 3342)", LoudnessParams),
        *_pair("spectral", 1, "mirflow.features.spectral:compute_spectral", ("numpy", "scipy"),
               "Spectral flatness, flux, skewness and kurtosis (frame medians)", SpectralParams),
        *_pair("multiband_rms", 1, "mirflow.features.multiband:compute_multiband_rms", ("numpy", "scipy"),
               "RMS level in four Butterworth bands", MultibandParams),
        Family("rhythm", 1, "mix", "rhythm", "mirflow.families:rhythm_family", ("madmom", "essentia", "numpy"),
               "Beat, downbeat and onset grids (.BEATS_GRID, .DOWNBEATS, .ONSETS) and rhythm features",
               kind="context", outputs=(("beats", "{name}.BEATS_GRID"), ("downbeats", "{name}.DOWNBEATS"),
                                        ("onsets", "{name}.ONSETS")), params=RhythmParams),
        Family("rhythm_stems", 1, "stems", "rhythm", "mirflow.families:rhythm_stems_family", ("madmom", "numpy"),
               "Per-stem onset density, syncopation, complexity and evenness", kind="context", needs=("beats",),
               params=RhythmParams),
        Family("harmony", 1, "mix", "harmony", "mirflow.families:harmony_family", ("essentia", "madmom", "numpy"),
               "Chroma, HPCP, tonal interval vector, key (Essentia and madmom)", kind="context",
               needs=("prefer:stems",), params=HarmonyParams),
        Family("harmony_stems", 1, "stems", "harmony_stems", "mirflow.features.harmony:compute_harmony_stems",
               ("librosa", "numpy"), "Harmonic movement and variance of the bass, other and vocals stems",
               params=HarmonyStemsParams),
        Family("timbral", 1, "mix", "timbral", "mirflow.features.timbral:compute_timbral",
               ("timbral-models", "librosa", "numpy", "scipy"), "Audio Commons timbral models",
               params=TimbralParams),
        # Version 2: danceability/atonality renamed danceability_dfa/atonality_key_profile (sources of the
        # resolved keys, mirflow.resolved).
        Family("descriptors", 2, "mix", "descriptors", "mirflow.features.descriptors:compute_descriptors",
               ("essentia", "numpy"), "Classic Essentia descriptors: DFA danceability, key-profile atonality, "
               "saturation, dynamic complexity", params=DescriptorsParams),
        Family("metadata", 1, "mix", "metadata", "mirflow.families:metadata_family", ("mutagen", "soundfile"),
               "Tags and stream facts of the input file", kind="context",
               params=MetadataParams),
        # Version 2: tonal/atonal heads (effnet_atonality, musicnn_atonality).
        Family("classifiers", 2, "mix", "classifiers", "mirflow.families:classifiers_family",
               ("essentia-tensorflow", "onnxruntime", "numpy"),
               "Essentia genre/mood/instrument (Discogs-EffNet) and MSD tags (MusiCNN), embeddings", kind="context",
               optional_models=_ESSENTIA_MODELS, any_of_models=("essentia_discogs_effnet_bs64", "essentia_msd_musicnn"),
               lane="gpu", outputs=(("embeddings", "embeddings/"),), params=ClassifiersParams),
        Family("aesthetics", 1, "mix", "aesthetics", "mirflow.families:aesthetics_family",
               ("audiobox-aesthetics", "torch"), "Meta Audiobox Aesthetics ratings", ("audiobox_aesthetics",),
               kind="context", lane="gpu", params=AestheticsParams),
        Family("captions_feature", 1, "mix", "captions_feature", "mirflow.families:captions_feature_family",
               ("llama-cpp-python",), "Captions written from the computed features by a small text LLM",
               ("smollm2_135m_instruct",), kind="context", needs=("features",), params=FeatureCaptionsParams),
        # Its models depend on captions_flamingo.model_variant; the workflow resolves them (common.smk).
        Family("captions_flamingo", 1, "mix", "captions_flamingo", "mirflow.families:captions_flamingo_family",
               ("llama-cpp-python",), "Music Flamingo captions through llama.cpp (audio in-process)",
               kind="context", needs=("features",), lane="gpu", params=FlamingoParams),
        Family("drums", 1, "mix", "drums", "mirflow.families:drums_family", ("torch", "madmom", "mido"),
               "ADTOF drum transcription: drums_adtof.mid and hit counts/densities", ("adtof_frame_rnn",),
               kind="context", needs=("beats", "prefer:stem:drums"), lane="gpu", outputs=(("midi", "drums_adtof.mid"),),
               params=DrumsParams),
        Family("bass_transcription", 1, "mix", "bass_transcription", "mirflow.families:bass_family",
               ("basic-pitch", "onnxruntime", "mido"), "Basic Pitch bass transcription: bass_basicpitch.mid",
               kind="context", needs=("stem:bass", "beats"), outputs=(("midi", "bass_basicpitch.mid"),),
               params=BassParams),
    )
}


def family(name: str) -> Family:
    """Look up a family by name, with a helpful error for typos."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown feature family '{name}'; known: {', '.join(sorted(FAMILIES))}") from None
