"""Typed family parameters: one frozen dataclass per family, the only source of defaults, ranges and units.

A family declares its parameters as a frozen dataclass whose fields are made by :func:`param`. From that one
declaration come the config defaults (:func:`from_config` fills what a config omits), the validation of a user's
config section (:func:`from_config`, errors naming the key and what is allowed), the JSON schema section
(:func:`schema_for`), the documented reference (:func:`reference_rows`) and the provenance dict written to
``_meta.params`` (:func:`as_dict`).

Kept free of heavy imports: the registry (imported by the Snakefile at parse time) imports it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ConfigError

_META = "mirflow_param"
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def param(default: Any, *, unit: str = "", doc: str, minimum: float | None = None, maximum: float | None = None,
          choices: tuple | None = None, nullable: bool = False, above: float | None = None) -> Any:
    """A dataclass field carrying a default, its unit, its allowed range or choices and a one-line description.

    Parameters
    ----------
    default : bool, int, float, str or None
        Default value; its type is the field's type (``None`` needs ``nullable=True`` and a type from ``choices``
        or ``minimum``: such a field accepts numbers).
    unit : str
        Unit of the value (``"samples"``, ``"Hz"``, ``"s"``, ``"dB"``), empty for counts and names.
    doc : str
        One-line description, shown in the generated configuration reference.
    minimum, maximum : float, optional
        Inclusive bounds.
    choices : tuple, optional
        Allowed values.
    above : float, optional
        Exclusive lower bound (a duration must be ``above=0``).
    nullable : bool
        ``None`` is allowed (meaning "automatic" or "off"; say which in ``doc``).
    """
    if default is None and not nullable:
        raise TypeError("a parameter defaulting to None must be nullable=True")
    kind = type(default) if default is not None else (type(choices[0]) if choices else float)
    if kind not in _JSON_TYPES:
        raise TypeError(f"parameter type {kind.__name__} is not supported (bool, int, float, str)")
    meta = {_META: {"unit": unit, "doc": doc, "minimum": minimum, "maximum": maximum, "above": above,
                    "choices": tuple(choices) if choices is not None else None, "nullable": nullable,
                    "type": kind}}
    return dataclasses.field(default=default, metadata=meta)


def _spec(f: dataclasses.Field) -> dict:
    try:
        return f.metadata[_META]
    except KeyError:
        raise TypeError(f"field '{f.name}' was not declared with mirflow.params.param") from None


def _allowed(spec: dict) -> str:
    if spec["choices"] is not None:
        text = "one of " + ", ".join(repr(c) for c in spec["choices"])
    else:
        text = "a" + ("n " if spec["type"] is int else " ") + _JSON_TYPES[spec["type"]]
        if spec["minimum"] is not None:
            text += f" >= {spec['minimum']}"
        if spec["above"] is not None:
            text += f" > {spec['above']}"
        if spec["maximum"] is not None:
            text += f" <= {spec['maximum']}"
    if spec["unit"]:
        text += f" ({spec['unit']})"
    return text + (" or null" if spec["nullable"] else "")


def _check(value: Any, spec: dict, key: str) -> Any:
    """``value`` converted to the field's type (an integer is a valid float), or a ConfigError naming ``key``."""
    bad = ConfigError(f"config key '{key}' is {value!r}; allowed: {_allowed(spec)}.",
                      f"set '{key}' to {_allowed(spec)} in your config, or remove it to use the default.")
    if value is None:
        if spec["nullable"]:
            return None
        raise bad
    kind = spec["type"]
    # bool is an int in Python; a YAML true for a number (or 1 for a switch) is a mistake, not a value.
    if isinstance(value, bool) != (kind is bool):
        raise bad
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        raise bad
    if spec["choices"] is not None and value not in spec["choices"]:
        raise bad
    if spec["minimum"] is not None and value < spec["minimum"]:
        raise bad
    if spec["maximum"] is not None and value > spec["maximum"]:
        raise bad
    if spec["above"] is not None and value <= spec["above"]:
        raise bad
    return value


def from_config(cls: type, section: Mapping | None, *, where: str) -> Any:
    """The parameter object of ``cls`` from one config section; omitted keys take the dataclass defaults.

    Parameters
    ----------
    cls : type
        A frozen dataclass whose fields were made by :func:`param`.
    section : mapping or None
        The config section (``None``: all defaults).
    where : str
        The section's name in the config, used in error messages (``"spectral"`` gives ``spectral.hop_length``).

    Raises
    ------
    ConfigError
        For an unknown key (naming the known ones) or a value of the wrong type, out of range or not a choice
        (naming the key and what is allowed).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    section = dict(section or {})
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(f'{where}.{k}' for k in unknown)}.",
                          f"known keys of '{where}': {', '.join(fields)}.")
    values = {name: _check(section[name], _spec(f), f"{where}.{name}") for name, f in fields.items() if name in section}
    return cls(**values)


def as_dict(obj: Any) -> dict:
    """The parameters as a plain dict in declaration order (for ``_meta.params`` and the resolved config)."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def defaults(cls: type) -> dict:
    """The default values of ``cls`` as a plain dict in declaration order."""
    return {f.name: f.default for f in dataclasses.fields(cls)}


def schema_for(cls: type) -> dict:
    """The JSON-schema section (``type: object``, no extra keys) validating a config section of ``cls``."""
    props = {}
    for f in dataclasses.fields(cls):
        spec = _spec(f)
        json_type = _JSON_TYPES[spec["type"]]
        prop: dict[str, Any] = {"type": [json_type, "null"] if spec["nullable"] else json_type}
        if spec["choices"] is not None:
            prop["enum"] = list(spec["choices"]) + ([None] if spec["nullable"] else [])
        if spec["minimum"] is not None:
            prop["minimum"] = spec["minimum"]
        if spec["maximum"] is not None:
            prop["maximum"] = spec["maximum"]
        if spec["above"] is not None:
            prop["exclusiveMinimum"] = spec["above"]
        prop["default"] = f.default
        prop["description"] = spec["doc"] + (f" ({spec['unit']})" if spec["unit"] else "")
        props[f.name] = prop
    return {"type": "object", "additionalProperties": False, "properties": props}


def reference_rows(cls: type) -> list[dict]:
    """One row per parameter: key, default, unit, allowed values, description (for the configuration reference)."""
    rows = []
    for f in dataclasses.fields(cls):
        spec = _spec(f)
        rows.append({"key": f.name, "default": f.default, "unit": spec["unit"], "allowed": _allowed(spec),
                     "doc": spec["doc"]})
    return rows


def with_family_sections(base: dict, families: Iterable) -> dict:
    """``base`` (the loaded config schema) with the section of every typed family generated from its parameters.

    The base schema keeps a placeholder (``{type: object}``) for such a section, so that the file alone still
    accepts a config naming it; the generated section is the one that validates. A typed section is not required:
    a config without it gets the defaults (:func:`fill_defaults`).
    """
    schema = dict(base)
    props = dict(schema.get("properties", {}))
    typed = {fam.settings: fam.params for fam in families if fam.params is not None}
    for section, cls in typed.items():
        props[section] = schema_for(cls)
    schema["properties"] = props
    if "required" in schema:
        schema["required"] = [k for k in schema["required"] if k not in typed]
    return schema


def fill_defaults(config: Mapping, families: Iterable) -> dict:
    """The typed family sections of ``config`` with every omitted key (or a whole omitted section) defaulted.

    The user's values are kept as written (no type conversion), so ``_meta.params`` records exactly what was
    configured plus the defaults.
    """
    typed = {fam.settings: fam.params for fam in families if fam.params is not None}
    return {section: {**defaults(cls), **dict(config.get(section) or {})} for section, cls in typed.items()}
