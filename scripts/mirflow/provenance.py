"""Reading the ``_provenance`` block of a ``.INFO`` (track or crop), whatever its layout version.

Each reason is stored once: a family that was not computed has its reason in ``missing_families``
and the keys it would have written in ``missing_family_keys`` (not one copy of the reason per key);
``absent`` holds only the keys of computed families (and resolved keys) with their own reasons.
Every reader goes through :func:`absent_reasons`, which also reads .INFO files written before this
layout (every reason under ``absent``). Standard library only: the Stable Audio Tools module
imports it inside its data-loader workers.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def absent_reasons(provenance: Mapping[str, Any] | None) -> dict[str, str]:
    """Every absent key of a .INFO with its reason (``"family X not computed: why"`` for missing families).

    Parameters
    ----------
    provenance : mapping or None
        A .INFO's ``_provenance`` block (None or a non-dict gives ``{}``).

    Returns
    -------
    dict
        key -> reason, sorted by key.
    """
    if not isinstance(provenance, Mapping):
        return {}
    out: dict[str, str] = {}
    missing = provenance.get("missing_families") or {}
    for family, keys in (provenance.get("missing_family_keys") or {}).items():
        why = missing.get(family, "no reason recorded")
        for key in keys:
            out[key] = f"family {family} not computed: {why}"
    out.update(provenance.get("absent") or {})
    return dict(sorted(out.items()))


def absent_reason(provenance: Mapping[str, Any] | None, key: str) -> str | None:
    """Why ``key`` is absent from a .INFO, or None when its provenance records no reason."""
    if not isinstance(provenance, Mapping):
        return None
    own = (provenance.get("absent") or {}).get(key)
    if own is not None:
        return own
    for family, keys in (provenance.get("missing_family_keys") or {}).items():
        if key in keys:
            why = (provenance.get("missing_families") or {}).get(family, "no reason recorded")
            return f"family {family} not computed: {why}"
    return None


def split_missing_family_keys(absent: Mapping[str, str], missing: Mapping[str, str],
                              family_keys: Mapping[str, list[str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Split per-key reasons into the keys' own reasons and the keys of families not computed.

    Parameters
    ----------
    absent : mapping
        key -> reason, including ``"family X not computed: why"`` for every key of a missing family.
    missing : mapping
        Missing family -> why.
    family_keys : mapping
        Family -> its catalogued keys.

    Returns
    -------
    own : dict
        key -> reason for keys whose reason is not just their family's (sorted).
    missing_family_keys : dict
        Missing family -> its absent keys (sorted); their reason is ``missing[family]``.
    """
    own = dict(absent)
    grouped: dict[str, list[str]] = {}
    for family, why in sorted(missing.items()):
        reason = f"family {family} not computed: {why}"
        keys = sorted(k for k in family_keys.get(family, []) if own.get(k) == reason)
        for key in keys:
            del own[key]
        if keys:
            grouped[family] = keys
    return dict(sorted(own.items())), grouped


def shared_inputs(families: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, dict], dict[str, dict]]:
    """Store every input file's fingerprint and audio facts once, families referring to it by path.

    Parameters
    ----------
    families : mapping
        Family -> its ``_meta`` subset with ``inputs`` (name -> ``{"path", "size_bytes", "quick_sha256"}``)
        and ``audio`` (name -> ``{"sample_rate", "channels", "duration_s", "decoder"}``).

    Returns
    -------
    families : dict
        The same, with ``inputs`` as name -> path and no ``audio``; the track's own partial JSONs a family
        read (inputs ``features_<family>``) are listed by family name in ``reads_families``.
    inputs : dict
        path -> fingerprint plus audio facts (sorted by path).

    Raises
    ------
    ValueError
        If two families read one path with different contents (it changed during the run).
    """
    inputs: dict[str, dict] = {}
    out: dict[str, dict] = {}
    for family, meta in families.items():
        meta = dict(meta)
        audio = meta.pop("audio", None) or {}
        refs = {}
        reads = []
        for name, fingerprint in (meta.get("inputs") or {}).items():
            if name.startswith("features_"):
                # The track's own partial JSON of another family: that family's entry is its provenance.
                reads.append(name[len("features_"):])
                continue
            if not isinstance(fingerprint, Mapping) or "path" not in fingerprint:
                refs[name] = fingerprint
                continue
            facts = {k: v for k, v in fingerprint.items() if k != "path"}
            if isinstance(audio.get(name), Mapping):
                facts.update(audio[name])
            path = str(fingerprint["path"])
            seen = inputs.setdefault(path, facts)
            if any(seen.get(k) != v for k, v in facts.items() if k in seen):
                raise ValueError(f"input {path} was read with different contents by two families (last: {family}); "
                                 "it changed during the run: rerun the track")
            seen.update(facts)
            refs[name] = path
        if "inputs" in meta:
            meta["inputs"] = refs
        if reads:
            meta["reads_families"] = sorted(reads)
        out[family] = meta
    return out, dict(sorted(inputs.items()))
