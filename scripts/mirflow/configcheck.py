"""The workflow's config: command-line overrides typed like the config file, and one-line errors.

``snakemake --config crops="{length_samples: 524288}"`` parses the value with YAML's BaseLoader, so every
scalar inside a nested override arrives as a string (``'524288'``, ``'false'``) and fails the schema.
:func:`type_overrides` reads those strings the way the config file's YAML would, where the schema wants a
non-string there. :func:`config_problem` turns the first schema error into one line that names the key,
with a did-you-mean for unknown keys, instead of Snakemake's dump of the whole schema.
"""
from __future__ import annotations

import difflib
from typing import Any

import yaml

_NESTED_HELP = ('nested values on the command line are YAML mappings of only the keys to change, e.g. '
                '--config families="{spectral_stems: false}" crops="{length_samples: 524288}"')


def _types(schema: dict) -> set[str]:
    kind = schema.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def type_overrides(overrides: Any, schema: dict) -> Any:
    """Command-line values with YAML-typed scalars where the schema expects no string.

    Parameters
    ----------
    overrides : Any
        The ``--config`` values as Snakemake parsed them.
    schema : dict
        The (sub)schema they are checked against.
    """
    if isinstance(overrides, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {k: type_overrides(v, props.get(k, extra if isinstance(extra, dict) else {}))
                for k, v in overrides.items()}
    if isinstance(overrides, list):
        return [type_overrides(v, schema.get("items", {})) for v in overrides]
    if isinstance(overrides, str) and _types(schema) and "string" not in _types(schema):
        try:
            return yaml.safe_load(overrides)
        except yaml.YAMLError:
            return overrides
    return overrides


def merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in, nested mappings key by key (neither argument is changed)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_problem(config: dict, schema: dict) -> str | None:
    """One line saying what is wrong with ``config`` (the first schema error), or None when it is valid."""
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        parts = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            parts.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        section = f" in '{where}'" if where else ""
        return f"unknown config key {', '.join(parts)}{section}; known keys: {', '.join(allowed)}."
    nested = len(error.absolute_path) > 1 or (error.validator == "type" and "object" in _types(error.schema))
    hint = f" ({_NESTED_HELP})" if nested else ""
    return f"config key '{where or '(top level)'}': {error.message}{hint}."
