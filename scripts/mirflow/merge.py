"""Assemble one track's partial family JSONs into ``<name>.INFO``.

The .INFO is a flat JSON object of every feature key plus one ``_provenance``
object: every input file once (size, quick hash, audio facts); per family its
version, parameters (a ``_stems`` twin configured like its full-mix family says
``params_same_as``), libraries, inputs (by path) and timing (the family's full
``_meta``, with its ``details``, stays in ``features/<family>.json``); which
families are missing and why, with their keys (each reason stored once, see
:mod:`mirflow.provenance`); why each other absent key is absent; and
warnings for values outside the catalogue's expected ranges (values are never
clamped). ``danceability`` and ``atonality`` are resolved here from their
sources (model heads or classic algorithms, see :mod:`mirflow.resolved`) and
``_provenance.resolved`` says which source gave each value.
"""
from __future__ import annotations

import logging
from typing import Any

from . import __version__
from .catalogue import Catalogue, load_catalogue
from .errors import MirflowError
from .jsonio import read_json, write_json_atomic
from .provenance import absent_reasons, shared_inputs, split_missing_family_keys
from .resolved import resolve_keys

#: .INFO layout: objects 4 levels deep (e.g. one family's params) on one line; see jsonio.dumps_strict.
INFO_INLINE_FROM = 4


class MergeError(MirflowError):
    """A partial JSON is inconsistent with the catalogue (a bug in a family)."""


def merge_partials(track_id: str, partials: dict[str, dict[str, Any]], missing: dict[str, str],
                   catalogue: Catalogue | None = None,
                   resolved_sources: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Build the .INFO object.

    Parameters
    ----------
    track_id : str
        The track's id (recorded in provenance).
    partials : dict
        family name -> parsed partial JSON (values plus ``_meta``).
    missing : dict
        family name -> reason, for families not computed for this track
        (disabled, no stems, model missing).
    catalogue : Catalogue, optional
        Defaults to the packaged catalogue.
    resolved_sources : dict, optional
        Resolved key -> ordered source keys (config ``resolved``); defaults to
        :data:`mirflow.resolved.DEFAULT_PARAMS`.

    Raises
    ------
    MergeError
        If a key is not catalogued, has the wrong type, appears in two families,
        or a catalogued key of a computed family has neither a value nor a reason.
    """
    cat = catalogue or load_catalogue()
    values: dict[str, Any] = {}
    absent: dict[str, str] = {}
    warnings: list[str] = []
    families: dict[str, Any] = {}
    for fam, partial in sorted(partials.items()):
        meta = partial.get("_meta")
        if not isinstance(meta, dict) or meta.get("family") != fam:
            raise MergeError(f"features/{fam}.json has no valid _meta block for family '{fam}'.")
        for key, value in partial.items():
            if key == "_meta":
                continue
            if key in values:
                raise MergeError(f"key '{key}' is written by two families (second: {fam}).")
            try:
                warning = cat.check_value(key, value)
            except (KeyError, TypeError) as err:
                raise MergeError(f"family '{fam}': {err.args[0]}.") from err
            if cat.entry(key).family != fam:
                raise MergeError(f"key '{key}' belongs to family '{cat.entry(key).family}' in the catalogue, "
                                 f"but '{fam}' wrote it.")
            if warning:
                warnings.append(warning)
            values[key] = value
        fam_absent = meta.get("absent", {})
        absent.update(fam_absent)
        unexplained = [k for k in cat.keys_for_family(fam) if k not in partial and k not in fam_absent]
        if unexplained:
            raise MergeError(f"family '{fam}' gave neither a value nor a reason for {unexplained}.")
        # The family's `details` stay in features/<family>.json (its full _meta): not copied here.
        families[fam] = {k: meta[k] for k in ("version", "scope", "params", "libraries", "inputs", "audio",
                                              "wall_time_s", "mirflow_version") if k in meta}
    for fam, reason in missing.items():
        for key in cat.keys_for_family(fam):
            absent.setdefault(key, f"family {fam} not computed: {reason}")
    # A source of a missing family is "not computed" there; why is said once, in missing_families.
    brief = {**absent, **{k: f"family {fam} not computed" for fam in missing for k in cat.keys_for_family(fam)
                          if k not in values}}
    resolved, resolved_absent, resolved_provenance = resolve_keys(values, brief, resolved_sources)
    warnings += [w for key, value in resolved.items() if (w := cat.check_value(key, value))]
    values.update(resolved)
    absent.update(resolved_absent)
    own_absent, missing_family_keys = split_missing_family_keys(
        absent, missing, {fam: cat.keys_for_family(fam) for fam in missing})
    try:
        families, inputs = shared_inputs(families)
    except ValueError as err:
        raise MergeError(str(err)) from err
    for fam, meta in families.items():
        if meta.get("mirflow_version") == __version__:
            del meta["mirflow_version"]  # the .INFO's own mirflow_version says it
        twin = fam[:-len("_stems")] if fam.endswith("_stems") else None
        if twin in families and "params" in meta and meta["params"] == families[twin].get("params"):
            meta["params_same_as"] = twin  # a stem twin configured like its full-mix family: params stored once
            del meta["params"]
    provenance = {
        "track_id": track_id,
        "mirflow_version": __version__,
        "catalogue_sha256": cat.source_sha256,
        "inputs": inputs,
        "families": families,
        "missing_families": dict(sorted(missing.items())),
        "missing_family_keys": missing_family_keys,
        "absent": own_absent,
        "resolved": resolved_provenance,
        "warnings": warnings,
    }
    return {**dict(sorted(values.items())), "_provenance": provenance}


def write_info(track: str, partial_paths: dict[str, str], info_path: str, *, missing: dict[str, str],
               resolved: dict[str, list[str]], logger: logging.Logger) -> None:
    """Merge a track's partial JSONs (family -> path) into ``info_path``, atomically."""
    partials = {name: read_json(path) for name, path in partial_paths.items()}
    info = merge_partials(track, partials, dict(missing), resolved_sources={k: list(v) for k, v in resolved.items()})
    write_json_atomic(info_path, info, inline_from=INFO_INLINE_FROM)
    prov = info["_provenance"]
    logger.info("wrote %s: %d keys, %d absent, %d warnings, missing families: %s", info_path,
                len(info) - 1, len(absent_reasons(prov)), len(prov["warnings"]), prov["missing_families"] or "none")
