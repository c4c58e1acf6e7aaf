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
from typing import Any

from ..result import FeatureResult
from .facts import (FACT_PARAMS, Allowed, TrackFacts, allowed_from_facts, allowed_from_text, build_facts,
                    template_caption, verify_caption)
from .llm import ChatModel, Sampling
from .text import clean_caption

STYLES = ("sentence", "detailed", "tags")
KEY_PREFIX = "caption_feature_"
FLAMINGO_PREFIX = "music_flamingo_"
FLAMINGO_SHORT_PREFIX = "music_flamingo_short_"

DEFAULT_PARAMS: dict[str, Any] = {
    # which caption styles to write; "tags" is always deterministic
    "styles": list(STYLES),
    # sampling (llama.cpp semantics); attempt i uses seed + i
    "seed": 42,
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 40,
    "min_p": 0.05,
    "repeat_penalty": 1.1,
    "attempts": 3,
    "max_tokens": {"sentence": 80, "detailed": 240},
    "max_words": {"sentence": 60, "detailed": 200},
    "max_sentences": {"sentence": 1, "detailed": 10},
    # model loading
    "context_size": 2048,
    "gpu_layers": 0,
    "batch_size": 512,
    "system_prompt": ("You rewrite music captions in fluent, natural English. Keep every fact, number and key "
                      "exactly as written; add nothing."),
    "facts": dict(FACT_PARAMS),
    # shorten Music Flamingo captions found among the features into music_flamingo_short_<name>
    "revise_flamingo": False,
    "revision": {
        "system_prompt": ("You shorten music descriptions. Keep only what the description says about the music; "
                          "add nothing."),
        "instruction": "Shorten this description to one sentence of at most 30 words:",
        "max_tokens": 80,
        "max_words": 40,
        "max_sentences": 2,
    },
}

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


def load_caption_model(model_path: str, params: Mapping[str, Any], threads: int | None = None) -> ChatModel:
    """Load the chat model once per job (``context_size``, ``gpu_layers``, ``batch_size`` from ``params``)."""
    p = {**DEFAULT_PARAMS, **params}
    return ChatModel(model_path, context_size=p["context_size"], threads=threads, gpu_layers=p["gpu_layers"],
                     batch_size=p["batch_size"])


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
                          params: Mapping[str, Any] | None = None) -> FeatureResult:
    """Feature-grounded captions of one track.

    Parameters
    ----------
    model : ChatModel or None
        The loaded chat model (:func:`load_caption_model`); None writes the
        template captions only (path "template (no model)").
    features : mapping
        The track's merged feature values (the other families' outputs).
    params : mapping, optional
        Overrides of :data:`DEFAULT_PARAMS`.

    Returns
    -------
    FeatureResult
        ``caption_feature_<style>`` for each enabled style (and
        ``music_flamingo_short_<name>`` with ``revise_flamingo``); ``meta``
        holds the facts, their source features, the model and, per key, the
        path that produced it, the tries and the seconds spent.
    """
    p = {**DEFAULT_PARAMS, **(params or {})}
    unknown = set(p["styles"]) - set(STYLES)
    if unknown:
        raise ValueError(f"unknown caption styles {sorted(unknown)}; expected some of {list(STYLES)}")
    facts = build_facts(features, {**FACT_PARAMS, **p["facts"]})
    result = FeatureResult()
    per_key: dict[str, Any] = {}
    result.meta.update({"facts": facts.fact_lines(), "fact_sources": facts.sources, "captions": per_key})
    if model is not None:
        result.meta["model"] = model.describe()
        result.meta["sampling"] = {k: p[k] for k in ("seed", "temperature", "top_p", "top_k", "min_p",
                                                     "repeat_penalty", "attempts", "max_tokens")}
    if not facts.has_describable_content():
        for style in p["styles"]:
            result.mark_absent(KEY_PREFIX + style, "no tempo, key, genre, mood, instrument or tag features to describe")
    else:
        for style in p["styles"]:
            _caption_style(model, facts, style, p, result, per_key)
    if p["revise_flamingo"]:
        _revise_flamingo(model, features, facts, p, result, per_key)
    return result


def _caption_style(model: ChatModel | None, facts: TrackFacts, style: str, p: Mapping[str, Any],
                   result: FeatureResult, per_key: dict) -> None:
    key = KEY_PREFIX + style
    # labels come from classifier vocabularies: the draft gets the same T5 clean-up as any model output
    draft = clean_caption(template_caption(facts, style))
    if style == "tags" or model is None:
        result.set(key, draft)
        per_key[key] = {"path": "template" if model is not None else "template (no model)"}
        return
    sampling = Sampling.from_params(p, max_tokens=p["max_tokens"][style])
    text, record = generate_verified(model, rewrite_messages(draft, style, p["system_prompt"]),
                                     allowed_from_facts(facts), sampling, p["attempts"],
                                     p["max_words"][style], p["max_sentences"][style])
    result.set(key, text if text is not None else draft)
    per_key[key] = {"path": "llm" if text is not None else "template", **record}


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]


def _revise_flamingo(model: ChatModel | None, features: Mapping[str, Any], facts: TrackFacts,
                     p: Mapping[str, Any], result: FeatureResult, per_key: dict) -> None:
    rev = {**DEFAULT_PARAMS["revision"], **p["revision"]}
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
            messages = [{"role": "system", "content": rev["system_prompt"]},
                        {"role": "user", "content": f"{rev['instruction']} {EXAMPLE_LONG_CAPTION}"},
                        {"role": "assistant", "content": EXAMPLE_SHORT_CAPTION},
                        {"role": "user", "content": f"{rev['instruction']} {source}"}]
            sampling = Sampling.from_params(p, max_tokens=rev["max_tokens"])
            text, record = generate_verified(model, messages, allowed_from_text(source, facts.label_vocabulary),
                                             sampling, p["attempts"], rev["max_words"], rev["max_sentences"])
        if text is not None:
            result.set(key, text)
            per_key[key] = {"path": "llm", **record}
            continue
        first = _first_sentence(source)
        if len(first.split()) <= rev["max_words"]:
            result.set(key, first)
            per_key[key] = {"path": "first sentence", **record}
        else:
            result.mark_absent(key, "every shortened version was rejected and the first sentence is longer than "
                                    f"{rev['max_words']} words")
            per_key[key] = {"path": "none", **record}
