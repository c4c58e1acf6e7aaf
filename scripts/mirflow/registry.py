"""Every feature family the workflow knows: name, version, scope and producer.

This module is imported by the Snakefile at parse time, so it must stay free of
heavy imports (numpy at most; no scipy, no torch). The version of a family is part of its
rule's ``params``: bumping it makes Snakemake rerun exactly that family on every
track (Snakemake cannot see changes inside imported modules by itself).

The families of :mod:`mirflow.features` are declared in their own modules (``FAMILY`` or ``FAMILIES``, see
:mod:`mirflow.features`) and found here by discovery; the families whose code lives outside that package
(metadata, model-based classifiers, captions, transcription) are declared below.
"""
from __future__ import annotations

import importlib
import pkgutil

# The families declared here need only their parameter classes: these modules, like the feature modules imported
# by discovery below, import numpy at most (scipy lazily), see tests/test_registry_import.py.
from . import features
from .aesthetics import AestheticsParams
from .captions.feature_captions import FeatureCaptionsParams
from .captions.flamingo import FlamingoParams
from .classifiers import ClassifiersParams
from .features import Family
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


_ESSENTIA_MODELS = (
    "essentia_discogs_effnet_bs64", "essentia_genre_discogs400", "essentia_mtg_jamendo_moodtheme",
    "essentia_mtg_jamendo_instrument", "essentia_danceability_effnet", "essentia_mood_aggressive_effnet",
    "essentia_mood_happy_effnet", "essentia_mood_relaxed_effnet", "essentia_mood_sad_effnet", "essentia_msd_musicnn",
    "essentia_danceability_musicnn", "essentia_mood_aggressive_musicnn", "essentia_mood_happy_musicnn",
    "essentia_mood_party_musicnn", "essentia_mood_relaxed_musicnn", "essentia_mood_sad_musicnn",
    "essentia_tonal_atonal_effnet", "essentia_tonal_atonal_musicnn",
)

#: The modules of mirflow.features declaring families, in the order FAMILIES lists theirs (the order of the
#: families within a job step). Any other module of the package declaring ``FAMILY`` or ``FAMILIES`` is found by
#: discovery and its families come last, in module-name order: adding a family needs no edit of this file.
_FEATURE_MODULES = ("loudness", "spectral", "multiband", "rhythm", "harmony", "timbral", "descriptors")

#: Families whose code lives outside mirflow.features, in registry order after the feature modules' families.
_DECLARED_HERE: tuple[Family, ...] = (
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


def _declared_in(module: str) -> tuple[Family, ...]:
    """The families module ``mirflow.features.<module>`` declares (``FAMILY`` or ``FAMILIES``), in its order."""
    mod = importlib.import_module(f"{features.__name__}.{module}")
    declared = (mod.FAMILY,) if hasattr(mod, "FAMILY") else tuple(getattr(mod, "FAMILIES", ()))
    for fam in declared:
        if not isinstance(fam, Family):
            raise TypeError(f"mirflow.features.{module} declares {fam!r}, not a mirflow.features.Family")
    return declared


def _all_families() -> dict[str, Family]:
    discovered = sorted(m.name for m in pkgutil.iter_modules(features.__path__) if m.name not in _FEATURE_MODULES)
    found: dict[str, Family] = {}
    for fam in (*(f for m in _FEATURE_MODULES for f in _declared_in(m)), *_DECLARED_HERE,
                *(f for m in discovered for f in _declared_in(m))):
        if fam.name in found:
            raise ValueError(f"feature family '{fam.name}' is declared twice")
        found[fam.name] = fam
    return found


#: Every family by name, in registry order (the order of the families within a job step and of the layout).
FAMILIES: dict[str, Family] = _all_families()


def family(name: str) -> Family:
    """Look up a family by name, with a helpful error for typos."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown feature family '{name}'; known: {', '.join(sorted(FAMILIES))}") from None
