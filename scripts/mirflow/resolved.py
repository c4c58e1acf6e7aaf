"""Keys resolved at merge time from several producers: ``danceability`` and ``atonality``.

Each resolved key takes the value of the first of its *sources* (keys computed
by the families) that has a value for the track, in the configured order: by
default the Discogs-EffNet model head, then the MusiCNN model head, then the
classic signal-based Essentia algorithm of the ``descriptors`` family. Which
source produced the value, how it was scaled and which sources were skipped
and why is recorded in the .INFO's ``_provenance.resolved``.

The two model heads give a probability (0-1). The classic sources are put on
the same 0-1 footing:

* ``danceability_dfa`` (Essentia ``Danceability``, documented as "normally 0 to
  ~3") is divided by 3. Values above 1 (strictly periodic material such as a
  drum loop) are kept, not clipped, and reported by the range check.
* ``atonality_key_profile`` (1 - KeyExtractor strength) is already 0-1.

The scaled classic values are not probabilities and are not calibrated against
the models: within one run every track uses the same source as long as the
same models are installed, and ``_provenance.resolved`` says which. Users who
need one quantity across corpora processed with different models read the
source keys directly (they are always in the .INFO too) or set the source list
to a single key in the config (``resolved:``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Source:
    """One admissible source of a resolved key."""

    key: str
    scale: float
    method: str


#: Every admissible source per resolved key (the config picks the order and a subset).
SOURCES: dict[str, dict[str, Source]] = {
    "danceability": {s.key: s for s in (
        Source("effnet_danceability", 1.0, "Discogs-EffNet danceability head: mean p(danceable)"),
        Source("musicnn_danceability", 1.0, "MusiCNN danceability head: mean p(danceable)"),
        Source("danceability_dfa", 1.0 / 3.0,
               "Essentia Danceability (DFA) divided by 3, its documented nominal maximum; not a probability"),
    )},
    "atonality": {s.key: s for s in (
        Source("effnet_atonality", 1.0, "Discogs-EffNet tonal/atonal head: mean p(atonal)"),
        Source("musicnn_atonality", 1.0, "MusiCNN tonal/atonal head: mean p(atonal)"),
        Source("atonality_key_profile", 1.0, "1 - Essentia KeyExtractor key strength; not a probability"),
    )},
}

DEFAULT_PARAMS = {
    "danceability": ["effnet_danceability", "musicnn_danceability", "danceability_dfa"],
    "atonality": ["effnet_atonality", "musicnn_atonality", "atonality_key_profile"],
}

#: Decimal places of a resolved value taken from a scaled source.
DECIMALS = 6


class ResolveError(ValueError):
    """The configured source list names a key that cannot be a source."""


def check_sources(params: Mapping[str, list[str]]) -> None:
    """Raise :class:`ResolveError` for an unknown resolved key, an unknown or repeated source, or an empty list."""
    for key, order in params.items():
        if key not in SOURCES:
            raise ResolveError(f"resolved.{key}: not a resolved key (known: {sorted(SOURCES)})")
        if not order:
            raise ResolveError(f"resolved.{key}: needs at least one source (known: {sorted(SOURCES[key])})")
        unknown = [s for s in order if s not in SOURCES[key]]
        if unknown or len(set(order)) != len(order):
            raise ResolveError(f"resolved.{key}: sources must be distinct keys of {sorted(SOURCES[key])}, "
                               f"got {list(order)}")


def resolve_keys(values: Mapping[str, Any], absent: Mapping[str, str],
                 params: Mapping[str, list[str]] | None = None) -> tuple[dict[str, float], dict[str, str],
                                                                        dict[str, dict]]:
    """Resolve every key of :data:`SOURCES` from already computed values.

    Parameters
    ----------
    values : mapping
        The track's (or crop's) computed keys.
    absent : mapping
        Why each absent key is absent.
    params : mapping, optional
        Resolved key -> ordered source keys; defaults to :data:`DEFAULT_PARAMS`.

    Returns
    -------
    resolved : dict
        Resolved key -> value (the source's value times its scale).
    reasons : dict
        Resolved key -> why it is absent (every source absent, with each reason).
    provenance : dict
        Resolved key -> ``{"source", "method", "scale", "skipped"}`` where
        ``skipped`` maps earlier sources without a value to their reason.
    """
    params = dict(DEFAULT_PARAMS if params is None else params)
    check_sources(params)
    resolved: dict[str, float] = {}
    reasons: dict[str, str] = {}
    provenance: dict[str, dict] = {}
    for key, order in params.items():
        skipped: dict[str, str] = {}
        for source_key in order:
            source = SOURCES[key][source_key]
            if source_key in values:
                value = values[source_key]
                resolved[key] = value if source.scale == 1.0 else round(value * source.scale, DECIMALS)
                provenance[key] = {"source": source_key, "method": source.method, "scale": source.scale,
                                   "skipped": skipped}
                break
            skipped[source_key] = absent.get(source_key, "not computed")
        else:
            reasons[key] = "no source has a value: " + "; ".join(f"{k}: {r}" for k, r in skipped.items())
            provenance[key] = {"source": None, "skipped": skipped}
    return resolved, reasons, provenance
