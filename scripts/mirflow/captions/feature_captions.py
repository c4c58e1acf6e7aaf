"""Captions written from a track's computed features (family ``captions_feature``).

LP-MusicCaps showed that a language model can turn tags into readable
captions; a 135M-parameter model (SmolLM2-135M-Instruct, Q4_1 GGUF, CPU) also
invents numbers, keys and instruments. So the model never sees raw features:

1. :func:`mirflow.captions.facts.build_facts` turns the features into facts
   (rounded tempo, key label, genres/moods/instruments above documented
   probability thresholds, qualitative words from documented thresholds);
2. :func:`mirflow.captions.facts.template_caption` writes a correct caption
   of each style from the facts (the *draft*);
3. the model is asked to rewrite the draft in fluent English (one worked
   example shows how; its values differ from any track's, so copying them is
   caught);
4. the answer is cleaned (:func:`mirflow.captions.text.clean_caption`) and
   verified (:func:`mirflow.captions.facts.verify_caption`): every number,
   key, tempo/loudness/brightness/drum/production word, genre, mood and
   instrument it mentions must be a fact, and it must still state the tempo,
   key and main genre;
5. a rejected answer is retried with the next seed (``seed``, ``seed + 1``,
   ... up to ``attempts`` tries); when every try fails, the draft itself is
   stored. ``_meta.details.captions.<key>.path`` says which ("llm" or
   "template") and lists the problems of each rejected try.

The ``tags`` style is always the deterministic comma-separated list (there is
nothing for a model to add). Keys: ``caption_feature_sentence``,
``caption_feature_detailed``, ``caption_feature_tags``. When the features
hold no tempo (nor "no steady beat"), no key and no genre/mood/instrument/tag
at all, every key is absent with that reason.

Optional (``revise_flamingo``, default off): each Music Flamingo caption
``music_flamingo_<name>`` among the features is shortened by the same model
into ``music_flamingo_short_<name>``; the short text may only contain numbers,
keys and controlled words that the long caption contains. When every try
fails, the long caption's first sentence is stored if it is short enough
(path "first sentence"), else the key is absent.

Same model file, parameters and seed give identical text on every run (see
:mod:`mirflow.captions.llm`).
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..params import as_dict, param, section
from ..result import FeatureResult
from .facts import (
    Allowed,
    FactParams,
    TrackFacts,
    allowed_from_facts,
    allowed_from_text,
    build_facts,
    template_caption,
    verify_caption,
)
from .llm import ChatModel, Sampling
from .text import clean_caption

STYLES = ("sentence", "detailed", "tags")
KEY_PREFIX = "caption_feature_"
FLAMINGO_PREFIX = "music_flamingo_"
FLAMINGO_SHORT_PREFIX = "music_flamingo_short_"

#: llama.cpp sampler seeds are 0 .. 2**32 - 2 (mirflow.captions.llm.Sampling).
MAX_SEED = 2**32 - 2


@dataclass(frozen=True)
class StyleMaxTokens:
    """Most tokens the model may generate per caption style."""

    sentence: int = param(80, unit="tokens", minimum=1, doc="Token limit of the one-sentence caption")
    detailed: int = param(240, unit="tokens", minimum=1, doc="Token limit of the detailed caption")


@dataclass(frozen=True)
class StyleMaxWords:
    """Most words an accepted caption may have per style."""

    sentence: int = param(60, unit="words", minimum=1, doc="Word limit of the one-sentence caption")
    detailed: int = param(200, unit="words", minimum=1, doc="Word limit of the detailed caption")


@dataclass(frozen=True)
class StyleMaxSentences:
    """Most sentences an accepted caption may have per style."""

    sentence: int = param(1, minimum=1, doc="Sentence limit of the one-sentence caption")
    detailed: int = param(10, minimum=1, doc="Sentence limit of the detailed caption")


@dataclass(frozen=True)
class RevisionParams:
    """How Music Flamingo captions are shortened (``revise_flamingo``)."""

    system_prompt: str = param("You shorten music descriptions. Keep only what the description says about the "
                               "music; add nothing.", doc="System prompt of the shortening chat")
    instruction: str = param("Shorten this description to one sentence of at most 30 words:",
                             doc="Text before the long caption in the user turn")
    max_tokens: int = param(80, unit="tokens", minimum=1, doc="Token limit of a short caption")
    max_words: int = param(40, unit="words", minimum=1, doc="Word limit of a short caption (and of the "
                           "first-sentence fallback)")
    max_sentences: int = param(2, minimum=1, doc="Sentence limit of a short caption")


@dataclass(frozen=True)
class FeatureCaptionsParams:
    """Parameters of ``captions_feature`` (config section ``captions_feature``)."""

    styles: tuple = param(STYLES, choices=STYLES, doc="Caption styles to write ('tags' is always deterministic)")
    # sampling (llama.cpp semantics); attempt i uses seed + i
    seed: int = param(42, minimum=0, maximum=MAX_SEED, doc="Sampler seed of the first try (try i uses seed + i)")
    temperature: float = param(0.5, minimum=0.0, doc="Sampling temperature (0: greedy)")
    top_p: float = param(0.9, minimum=0.0, maximum=1.0, doc="Nucleus sampling threshold (1: off)")
    top_k: int = param(40, minimum=0, doc="Top-k filter (0: off)")
    min_p: float = param(0.05, minimum=0.0, maximum=1.0, doc="Min-p filter (0: off)")
    repeat_penalty: float = param(1.1, above=0.0, doc="Repetition penalty (1: off)")
    attempts: int = param(3, minimum=1, doc="Tries per caption before the template draft is kept")
    max_tokens: StyleMaxTokens = section(StyleMaxTokens(), doc="Token limit per style")
    max_words: StyleMaxWords = section(StyleMaxWords(), doc="Word limit per style")
    max_sentences: StyleMaxSentences = section(StyleMaxSentences(), doc="Sentence limit per style")
    # model loading
    context_size: int = param(2048, unit="tokens", minimum=1, doc="llama.cpp context size")
    gpu_layers: int = param(0, minimum=-1, doc="Model layers offloaded to the GPU (-1: all, 0: CPU only)")
    batch_size: int = param(512, unit="tokens", minimum=1, doc="llama.cpp prompt batch size")
    system_prompt: str = param("You rewrite music captions in fluent, natural English. Keep every fact, number and "
                               "key exactly as written; add nothing.", doc="System prompt of the rewrite chat")
    facts: FactParams = section(FactParams(), doc="Thresholds and counts of the fact rules (mirflow.captions.facts)")
    revise_flamingo: bool = param(False, doc="Shorten the Music Flamingo captions among the features into "
                                  "music_flamingo_short_<name>")
    revision: RevisionParams = section(RevisionParams(), doc="Shortening of Music Flamingo captions")

#: The worked example shown to the model: features whose values no real track's facts share by accident.
EXAMPLE_FEATURES: dict[str, Any] = {
    "bpm": 92.0, "bpm_is_defined": 1, "key": "F major", "essentia_genre": {"Jazz---Cool Jazz": 0.9},
    "essentia_mood": {"relaxed": 0.9}, "essentia_instrument": {"piano": 0.9, "doublebass": 0.8},
}
EXAMPLE_REWRITES = {
    "sentence": "A relaxed cool jazz piece at 92 BPM in F major, built on piano and double bass.",
    "detailed": ("This is a relaxed cool jazz piece in F major. It moves at a moderate 92 BPM. Piano and double "
                 "bass carry the music from start to finish."),
}
EXAMPLE_LONG_CAPTION = ("This cool jazz recording opens with a brushed snare and a walking double bass, then a "
                        "mellow piano states the theme in F major at about 92 BPM; the mood stays relaxed and "
                        "intimate throughout, with a short piano solo before the final chorus.")
EXAMPLE_SHORT_CAPTION = ("A relaxed cool jazz piece in F major at about 92 BPM, with piano, brushed snare and "
                         "double bass.")


def load_caption_model(model_path: str, params: FeatureCaptionsParams = FeatureCaptionsParams(),
                       threads: int | None = None) -> ChatModel:
    """Load the chat model once per job (``context_size``, ``gpu_layers``, ``batch_size`` from ``params``)."""
    return ChatModel(model_path, context_size=params.context_size, threads=threads, gpu_layers=params.gpu_layers,
                     batch_size=params.batch_size)


def rewrite_messages(draft: str, style: str, system_prompt: str) -> list[dict[str, str]]:
    """Chat messages asking for a fluent rewrite of ``draft``, with the worked example first."""
    example_draft = template_caption(build_facts(EXAMPLE_FEATURES), style)
    return [{"role": "system", "content": system_prompt},
            {"role": "user", "content": f"Rewrite: {example_draft}"},
            {"role": "assistant", "content": EXAMPLE_REWRITES[style]},
            {"role": "user", "content": f"Rewrite: {draft}"}]


def _tidy(text: str) -> str:
    """Cleaned model output: no wrapping quotes, ends with a full stop."""
    text = clean_caption(text).strip().strip('"').strip()
    if text and text[-1] not in ".!?":
        text += "."
    return text


def generate_verified(model: ChatModel, messages: list[dict[str, str]], allowed: Allowed, sampling: Sampling,
                      attempts: int, max_words: int | None, max_sentences: int | None) -> tuple[str | None, dict]:
    """Ask ``model`` up to ``attempts`` times (seeds ``sampling.seed + i``) for a text that passes verification.

    Returns
    -------
    text : str or None
        The first accepted answer, or None when every try was rejected.
    record : dict
        ``attempts`` (tries made), ``seed`` (of the accepted try), ``rejected``
        (per rejected try: its seed, the text and the problems), ``seconds``
        (total generation time).
    """
    record: dict[str, Any] = {"attempts": 0, "rejected": [], "seconds": 0.0}
    for i in range(attempts):
        seed = sampling.seed + i
        generation = model.chat(messages, dataclasses.replace(sampling, seed=seed))
        record["attempts"] += 1
        record["seconds"] = round(record["seconds"] + generation.seconds, 3)
        text = _tidy(generation.text)
        problems = verify_caption(text, allowed, max_words=max_words, max_sentences=max_sentences)
        if generation.stop == "max_tokens":
            problems.append("cut off at max_tokens")
        if not problems:
            record["seed"] = seed
            return text, record
        record["rejected"].append({"seed": seed, "text": text, "problems": problems})
    return None, record


def caption_from_features(model: ChatModel | None, features: Mapping[str, Any],
                          params: FeatureCaptionsParams = FeatureCaptionsParams()) -> FeatureResult:
    """Feature-grounded captions of one track.

    Parameters
    ----------
    model : ChatModel or None
        The loaded chat model (:func:`load_caption_model`); None writes the
        template captions only (path "template (no model)").
    features : mapping
        The track's merged feature values (the other families' outputs).
    params : FeatureCaptionsParams, optional
        Styles, sampling, limits, fact thresholds and the revision of Music Flamingo captions.

    Returns
    -------
    FeatureResult
        ``caption_feature_<style>`` for each enabled style (and
        ``music_flamingo_short_<name>`` with ``revise_flamingo``); ``meta``
        holds the facts, their source features, the model and, per key, the
        path that produced it, the tries and the seconds spent.
    """
    p = params
    unknown = set(p.styles) - set(STYLES)
    if unknown:  # from_config rejects them; this guards a directly built object
        raise ValueError(f"unknown caption styles {sorted(unknown)}; expected some of {list(STYLES)}")
    facts = build_facts(features, p.facts)
    result = FeatureResult()
    per_key: dict[str, Any] = {}
    result.meta.update({"facts": facts.fact_lines(), "fact_sources": facts.sources, "captions": per_key})
    if model is not None:
        result.meta["model"] = model.describe()
        result.meta["sampling"] = {"seed": p.seed, "temperature": p.temperature, "top_p": p.top_p, "top_k": p.top_k,
                                   "min_p": p.min_p, "repeat_penalty": p.repeat_penalty, "attempts": p.attempts,
                                   "max_tokens": as_dict(p.max_tokens)}
    if not facts.has_describable_content():
        for style in p.styles:
            result.mark_absent(KEY_PREFIX + style, "no tempo, key, genre, mood, instrument or tag features to describe")
    else:
        for style in p.styles:
            _caption_style(model, facts, style, p, result, per_key)
    if p.revise_flamingo:
        _revise_flamingo(model, features, facts, p, result, per_key)
    return result


def _caption_style(model: ChatModel | None, facts: TrackFacts, style: str, p: FeatureCaptionsParams,
                   result: FeatureResult, per_key: dict) -> None:
    key = KEY_PREFIX + style
    # labels come from classifier vocabularies: the draft gets the same T5 clean-up as any model output
    draft = clean_caption(template_caption(facts, style))
    if style == "tags" or model is None:
        result.set(key, draft)
        per_key[key] = {"path": "template" if model is not None else "template (no model)"}
        return
    sampling = Sampling.from_params(p, max_tokens=getattr(p.max_tokens, style))
    text, record = generate_verified(model, rewrite_messages(draft, style, p.system_prompt),
                                     allowed_from_facts(facts), sampling, p.attempts,
                                     getattr(p.max_words, style), getattr(p.max_sentences, style))
    result.set(key, text if text is not None else draft)
    per_key[key] = {"path": "llm" if text is not None else "template", **record}


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]


def _revise_flamingo(model: ChatModel | None, features: Mapping[str, Any], facts: TrackFacts,
                     p: FeatureCaptionsParams, result: FeatureResult, per_key: dict) -> None:
    rev = p.revision
    sources = {k[len(FLAMINGO_PREFIX):]: v for k, v in features.items()
               if k.startswith(FLAMINGO_PREFIX) and not k.startswith(FLAMINGO_SHORT_PREFIX) and isinstance(v, str)}
    for name, long_caption in sorted(sources.items()):
        key = FLAMINGO_SHORT_PREFIX + name
        source = clean_caption(long_caption)
        if not source:
            result.mark_absent(key, f"{FLAMINGO_PREFIX}{name} is empty")
            continue
        text, record = None, {"attempts": 0, "rejected": []}
        if model is not None:
            messages = [{"role": "system", "content": rev.system_prompt},
                        {"role": "user", "content": f"{rev.instruction} {EXAMPLE_LONG_CAPTION}"},
                        {"role": "assistant", "content": EXAMPLE_SHORT_CAPTION},
                        {"role": "user", "content": f"{rev.instruction} {source}"}]
            sampling = Sampling.from_params(p, max_tokens=rev.max_tokens)
            text, record = generate_verified(model, messages, allowed_from_text(source, facts.label_vocabulary),
                                             sampling, p.attempts, rev.max_words, rev.max_sentences)
        if text is not None:
            result.set(key, text)
            per_key[key] = {"path": "llm", **record}
            continue
        first = _first_sentence(source)
        if len(first.split()) <= rev.max_words:
            result.set(key, first)
            per_key[key] = {"path": "first sentence", **record}
        else:
            result.mark_absent(key, "every shortened version was rejected and the first sentence is longer than "
                                    f"{rev.max_words} words")
            per_key[key] = {"path": "none", **record}
