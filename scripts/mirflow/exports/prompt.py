"""Prompt templates and conditioning values built from one ``.INFO``.

Template syntax (:mod:`mirflow.templates`, shared with the caption prompts)::

    "[{genres}, ][{moods}, ]{bpm:.0f} BPM[, {key}]"

* ``{name}`` / ``{name:spec}`` is a field: an .INFO key (``bpm``, ``key``, ``track_metadata_artist``,
  any caption key) or a derived field (below). ``spec`` is a Python format spec (``.0f``).
* A part in ``[...]`` is optional: it is left out when any of its fields is missing.
  A field outside brackets is required: when it is missing, the file is rejected.
  Write ``[[`` and ``]]`` for literal brackets.
* The rendered prompt is normalised (:func:`mirflow.textnorm.normalize_text`), whitespace is
  collapsed and separators (``,;`` and spaces) dangling at either end are removed.

Fields:

* every scalar .INFO value; strings (and lists of strings, joined with ", ") are normalised for
  T5; an empty string counts as missing;
* a value whose validity flag is 0 is missing (``validity_flags``: ``bpm`` is dropped when
  ``bpm_is_defined`` is 0, so an untrustworthy tempo never reaches a prompt);
* derived label lists (``label_fields``): ``genres``, ``moods``, ``instruments``, ``tags`` are the labels of
  ``essentia_genre`` / ``essentia_mood`` / ``essentia_instrument`` / ``musicnn_tags`` with probability >=
  ``label_threshold``, most probable first, at most ``max_labels``, joined with ", ". With
  ``label_style: "leaf"`` a Discogs label ``Electronic---Deep House`` reads ``Deep House``;
  with ``"full"`` it reads ``Electronic - Deep House``;
* ``caption``: one of the ``caption_keys`` the .INFO has (the first one, or with dropout a random one),
  ending with sentence punctuation.

Dropout (per-sample randomisation, as text-to-music training recipes do): when a random generator is
given (the Stable Audio module seeds one per sample from ``seed``, the audio's path and the crop start,
so a draw is reproducible), each optional part is left out with probability ``dropout`` (a number, or
``{field: probability}`` with ``"default"`` for the others; a part uses the probability of its first
field). When every optional part was dropped and no required part is left, one available part is kept
at random, so a prompt is never empty. Dropout only removes facts: a part whose field is missing is
never rendered, whatever the draw. Without a generator (AudioCraft's ``description``, the checker) the
prompt has every available part.
"""
from __future__ import annotations

import math
import random
from typing import Any, TypeGuard

from ..labels import rank_labels
from ..provenance import absent_reason
from ..templates import Segment, TemplateError, parse_template  # re-exported: part of this API
from ..textnorm import normalize_text

#: Parameters of prompt building (JSON-able). The Stable Audio and AudioCraft exports share them.
DEFAULT_PARAMS: dict[str, Any] = {
    "template": "[{caption} ][{genres}, ][{moods}, ][{instruments}, ][{tags}, ][{bpm:.0f} BPM, ][{key}]",
    "caption_keys": ["caption_feature_sentence", "caption_feature_detailed"],
    "dropout": 0.3,               # probability an optional part is left out of a sample's prompt (SAT only)
    "seed": 0,                    # with the audio path and crop start, seeds each sample's dropout draw
    "number_keys": [],            # .INFO keys returned as numbers for `number` conditioners (all required)
    "required_keys": [],          # further keys a file must have to be used
    "validity_flags": {"bpm": "bpm_is_defined"},
    "label_fields": {"genres": "essentia_genre", "moods": "essentia_mood", "instruments": "essentia_instrument",
                     "tags": "musicnn_tags"},
    "label_threshold": 0.1,
    "max_labels": 3,
    "label_style": "leaf",        # "leaf" | "full"
    "label_parent_separator": "---",
    "drop_non_ascii": False,      # see mirflow.textnorm
}

def top_labels(labels: Any, threshold: float, max_labels: int, style: str = "leaf",
               parent_separator: str = "---") -> list[str]:
    """Labels of a ``{label: probability}`` dict with probability >= ``threshold``, ranked by
    :func:`mirflow.labels.rank_labels` (most probable first, ties alphabetical), then named by ``style``.

    Non-dict input gives ``[]``; non-numeric probabilities are ignored.
    """
    if not isinstance(labels, dict):
        return []
    out = []
    for label, _ in rank_labels(labels, threshold, max_labels):
        if parent_separator and parent_separator in label:
            parts = [p.strip() for p in label.split(parent_separator) if p.strip()]
            label = parts[-1] if style == "leaf" else " - ".join(parts)
        out.append(label)
    return out


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def invalid_by_flag(info: dict[str, Any], key: str, params: dict[str, Any]) -> bool:
    """True when ``key`` has a validity flag in ``params`` and that flag is 0 in ``info``."""
    flag = params["validity_flags"].get(key)
    return flag is not None and info.get(flag) == 0


def prompt_fields(info: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields a template can use (see the module docstring); missing fields are not in the dict."""
    p = {**DEFAULT_PARAMS, **(params or {})}
    fields: dict[str, Any] = {}
    for key, value in info.items():
        if key.startswith("_") or invalid_by_flag(info, key, p):
            continue
        if _number(value):
            fields[key] = value
        elif isinstance(value, str):
            text = normalize_text(value, p["drop_non_ascii"])
            if text:
                fields[key] = text
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            items = [normalize_text(v, p["drop_non_ascii"]) for v in value]
            text = ", ".join(i for i in items if i)
            if text:
                fields[key] = text
    for name, source in p["label_fields"].items():
        labels = top_labels(info.get(source), p["label_threshold"], p["max_labels"], p["label_style"],
                            p["label_parent_separator"])
        labels = [normalize_text(label, p["drop_non_ascii"]) for label in labels]
        labels = [label for label in labels if label]
        if labels:
            fields[name] = ", ".join(labels)
    captions = [c if c.endswith((".", "!", "?")) else c + "." for k in p["caption_keys"]
                if isinstance(c := fields.get(k), str)]
    if captions:
        fields["caption"] = captions[0]
        fields["_captions"] = captions  # every available caption: dropout draws one
    return fields


def sample_rng(seed: int, sample: str, start: float | None = None) -> random.Random:
    """The dropout generator of one training sample: the same (seed, sample, start) gives the same draw.

    Parameters
    ----------
    seed : int
        The export's ``seed``.
    sample : str
        The audio's path relative to the dataset (SAT's ``relpath``), or its path.
    start : float, optional
        The sample's start in the audio in seconds (SAT's ``seconds_start``); random crops of one file
        then draw different prompts.
    """
    return random.Random(f"{seed}|{sample}|{start}")


def _dropout_probability(dropout: Any, segment: Segment) -> float:
    if isinstance(dropout, dict):
        first = segment.fields[0] if segment.fields else "default"
        p = dropout.get(first, dropout.get("default", 0.0))
    else:
        p = dropout
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise TemplateError(f"dropout must be a probability in [0, 1] (or a dict of them), not {p!r}")
    return float(p)


def why_missing(info: dict[str, Any], key: str, params: dict[str, Any]) -> str:
    """A short reason why a field is not available for ``info``."""
    if invalid_by_flag(info, key, params):
        return f"{key}: {params['validity_flags'][key]} = 0"
    prov = info.get("_provenance")
    if (why := absent_reason(prov, key)) is not None:
        return f"{key}: {why}"
    if key in params["label_fields"]:
        source = params["label_fields"][key]
        if (why := absent_reason(prov, source)) is not None:
            return f"{key}: {source}: {why}"
        if source in info:
            return f"{key}: no {source} label with probability >= {params['label_threshold']}"
        return f"{key}: {source} not in the .INFO"
    if key in info:
        return f"{key}: empty or not a scalar value"
    return f"{key}: not in the .INFO"


def _render(segment: Segment, fields: dict[str, Any]) -> str:
    try:
        return segment.text.format_map(fields)
    except (ValueError, TypeError) as err:
        shown = {name: fields.get(name) for name in segment.fields}
        raise TemplateError(f"cannot format template part {segment.text!r} with {shown}: {err}") from None


def _tidy(text: str, drop_non_ascii: bool) -> str:
    text = normalize_text(text, drop_non_ascii)
    return text.strip(" ,;")


def build_prompt(info: dict[str, Any], params: dict[str, Any] | None = None, rng: random.Random | None = None
                 ) -> tuple[str | None, str | None]:
    """Render the prompt template for one .INFO.

    ``rng`` (see :func:`sample_rng`) applies the dropout of the module docstring; None renders every
    available part.

    Returns
    -------
    prompt : str or None
        The prompt, or None when the file must be skipped.
    reason : str or None
        Why it must be skipped (a required field is missing, the prompt is empty), else None.

    Raises
    ------
    TemplateError
        If the template is malformed or a value does not fit its format spec (a configuration error).
    """
    p = {**DEFAULT_PARAMS, **(params or {})}
    fields = prompt_fields(info, p)
    if rng is not None and "_captions" in fields:
        fields["caption"] = rng.choice(fields["_captions"])
    pieces: list[str | None] = []
    missing, optional = [], []
    for seg in parse_template(p["template"]):
        lacking = [name for name in seg.fields if name not in fields]
        if lacking:
            if not seg.optional:
                missing += [why_missing(info, name, p) for name in lacking]
            continue
        if seg.optional and rng is not None:
            keep = rng.random() >= _dropout_probability(p["dropout"], seg)
            optional.append((len(pieces), _render(seg, fields)))
            pieces.append(None if not keep else optional[-1][1])
            continue
        pieces.append(_render(seg, fields))
    if optional and rng is not None and all(piece is None for piece in pieces):  # optional: only with an rng
        index, text = rng.choice(optional)
        pieces[index] = text
    if missing:
        return None, "missing required field(s): " + "; ".join(missing)
    prompt = _tidy("".join(piece for piece in pieces if piece is not None), p["drop_non_ascii"])
    if not prompt:
        return None, "empty prompt (no field of the template is available)"
    return prompt, None


def conditioning(info: dict[str, Any], params: dict[str, Any] | None = None, rng: random.Random | None = None
                 ) -> tuple[dict[str, Any] | None, str | None]:
    """Prompt and numeric conditioning values of one .INFO (``rng``: the sample's dropout, see build_prompt).

    Returns
    -------
    values : dict or None
        ``{"prompt": str, <number key>: float, ...}``, or None when the file must be skipped.
    reason : str or None
        Why it is skipped: a required field, required key or number key is missing/invalid.
    """
    p = {**DEFAULT_PARAMS, **(params or {})}
    problems = []
    for key in p["required_keys"]:
        if key not in info or invalid_by_flag(info, key, p):
            problems.append(why_missing(info, key, p))
    numbers: dict[str, float] = {}
    for key in p["number_keys"]:
        value = info.get(key)
        if not _number(value) or invalid_by_flag(info, key, p):
            problems.append(why_missing(info, key, p) if not (key in info and not _number(value))
                            else f"{key}: not a number ({value!r})")
        else:
            numbers[key] = float(value)
    prompt, reason = build_prompt(info, p, rng)
    if reason:
        problems.append(reason)
    if problems:
        return None, "; ".join(problems)
    return {"prompt": prompt, **numbers}, None
