"""Typed family parameters: one frozen dataclass per family, the only source of defaults, ranges and units.

A family declares its parameters as a frozen dataclass whose fields are made by :func:`param` (a scalar or a
tuple of scalars), :func:`section` (a nested group of parameters, itself such a class) or :func:`mapping` (an open
set of named entries of one such class, e.g. prompts by name). From that one
declaration come the config defaults (:func:`from_config` fills what a config omits), the validation of a user's
config section (:func:`from_config`, errors naming the key and what is allowed), the JSON schema section
(:func:`schema_for`), the documented reference (:func:`reference_rows`) and the provenance dict written to
``_meta.params`` (:func:`as_dict`).

Kept free of heavy imports: the registry (imported by the Snakefile at parse time) imports it.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from .errors import ConfigError

_META = "mirflow_param"
#: Torch device names a ``device`` parameter accepts ("auto": a CUDA/ROCm GPU when torch sees one, else the CPU).
DEVICE_PATTERN = r"auto|cpu|cuda(:[0-9]+)?"
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def param(default: Any, *, unit: str = "", doc: str, minimum: float | None = None, maximum: float | None = None,
          choices: tuple | None = None, nullable: bool = False, above: float | None = None,
          pattern: str | None = None, kind: type | None = None, length: int | None = None) -> Any:
    """A dataclass field carrying a default, its unit, its allowed range or choices and a one-line description.

    Parameters
    ----------
    default : bool, int, float, str, tuple of those, or None
        Default value; its type is the field's type (``None`` needs ``nullable=True`` and a type from ``kind``,
        ``choices`` or ``minimum``: such a field accepts numbers). A tuple makes a list parameter: the config
        gives a list, every item is checked against the type, range and choices, the object holds a tuple.
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
    pattern : str, optional
        Regular expression a string must match in full (e.g. a device name).
    kind : type, optional
        The value type where the default does not give it (a nullable string: ``param(None, kind=str, ...)``),
        or the item type of a list defaulting to ``()``.
    length : int, optional
        Exact number of items of a list parameter (a ``(low, high)`` pair: 2).
    """
    if default is None and not nullable:
        raise TypeError("a parameter defaulting to None must be nullable=True")
    is_list = isinstance(default, tuple)
    sample = (default[0] if default else None) if is_list else default
    if kind is None:
        kind = type(sample) if sample is not None else (type(choices[0]) if choices else float)
    if kind not in _JSON_TYPES:
        raise TypeError(f"parameter type {kind.__name__} is not supported (bool, int, float, str)")
    meta = {_META: {"unit": unit, "doc": doc, "minimum": minimum, "maximum": maximum, "above": above,
                    "choices": tuple(choices) if choices is not None else None, "nullable": nullable,
                    "type": kind, "pattern": pattern, "list": is_list, "length": length}}
    return dataclasses.field(default=default, metadata=meta)


def section(cls: type, *, doc: str) -> Any:
    """A dataclass field holding a nested group of parameters (``cls``, a class of :func:`param` fields).

    In the config it is a mapping of its own keys; an omitted key takes its default like any other.
    """
    _require_params_class(cls)
    return dataclasses.field(default=cls(), metadata={_META: {"section": cls, "doc": doc}})


def mapping(cls: type, default: Mapping[str, Mapping], *, doc: str, key_pattern: str = r"[a-z0-9_]+") -> Any:
    """A dataclass field holding named entries of ``cls`` (an open set of names, e.g. prompts).

    The object holds a read-only mapping name -> ``cls`` instance. A config that gives this key replaces the
    default entries (so entries can be dropped); an entry's omitted keys take ``cls``'s defaults.

    Parameters
    ----------
    cls : type
        Parameter class of one entry.
    default : mapping
        Default entries: name -> mapping of ``cls``'s keys.
    key_pattern : str
        Regular expression every name must match in full.
    """
    _require_params_class(cls)
    entries = {name: _build(cls, values, where=f"<default of {cls.__name__}>.{name}")
               for name, values in default.items()}
    return dataclasses.field(default_factory=lambda: MappingProxyType(dict(entries)),
                             metadata={_META: {"mapping": cls, "doc": doc, "key_pattern": key_pattern}})


def _require_params_class(cls: type) -> None:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a parameter dataclass")
    for f in dataclasses.fields(cls):
        _spec(f)


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


def _spec(f: dataclasses.Field) -> dict:
    try:
        return f.metadata[_META]
    except KeyError:
        raise TypeError(f"field '{f.name}' was not declared with mirflow.params.param") from None


def _allowed(spec: dict) -> str:
    if spec.get("section") is not None:
        return "a mapping of the keys below"
    if spec.get("mapping") is not None:
        keys = ", ".join(f.name for f in dataclasses.fields(spec["mapping"]))
        return f"a mapping of names ({spec['key_pattern']}) to {{{keys}}}"
    if spec["list"]:
        count = f"{spec['length']} " if spec["length"] is not None else ""
        item = _allowed({**spec, "list": False, "nullable": False, "unit": ""})
        return f"a list of {count}items, each {item}" + (f" ({spec['unit']})" if spec["unit"] else "")
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
        if spec["pattern"] is not None:
            text += f" matching {spec['pattern']}"
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
    if spec["list"]:
        if not isinstance(value, (list, tuple)) or (spec["length"] is not None and len(value) != spec["length"]):
            raise bad
        item = {**spec, "list": False, "nullable": False}
        return tuple(_check(v, item, f"{key}[{i}]") for i, v in enumerate(value))
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
    if spec["pattern"] is not None and not re.fullmatch(spec["pattern"], value):
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
    return _build(cls, section, where=where)


def _build(cls: type, section: Any, *, where: str) -> Any:
    if section is not None and not isinstance(section, Mapping):
        raise ConfigError(f"config key '{where}' is {section!r}; allowed: a mapping of its keys.",
                          f"write '{where}' as a mapping, or remove it to use the defaults.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    section = dict(section or {})
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(f'{where}.{k}' for k in unknown)}.",
                          f"known keys of '{where}': {', '.join(fields)}.")
    values = {name: _value(section[name], _spec(f), f"{where}.{name}") for name, f in fields.items()
              if name in section}
    return cls(**values)


def _value(value: Any, spec: dict, key: str) -> Any:
    """One config value as the field holds it: a nested section or mapping built, a scalar or list checked."""
    if spec.get("section") is not None:
        return _build(spec["section"], value, where=key)
    if spec.get("mapping") is not None:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}' is {value!r}; allowed: {_allowed(spec)}.",
                              f"write '{key}' as a mapping of names to entries, or remove it for the defaults.")
        for name in value:
            if not isinstance(name, str) or not re.fullmatch(spec["key_pattern"], name):
                raise ConfigError(f"config key '{key}' has the entry name {name!r}, which is not usable in a key; "
                                  f"names must match {spec['key_pattern']}.", "rename the entry.")
        return MappingProxyType({name: _build(spec["mapping"], entry, where=f"{key}.{name}")
                                 for name, entry in value.items()})
    return _check(value, spec, key)


def as_dict(obj: Any) -> dict:
    """The parameters as plain JSON-like data in declaration order (for ``_meta.params`` and the resolved config):
    nested sections and mapping entries as dicts, lists as lists."""
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return as_dict(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def defaults(cls: type) -> dict:
    """The default values of ``cls`` as plain data in declaration order (nested sections as dicts)."""
    return {f.name: _plain(_default(f)) for f in dataclasses.fields(cls)}


def schema_for(cls: type) -> dict:
    """The JSON-schema section (``type: object``, no extra keys) validating a config section of ``cls``."""
    props = {}
    for f in dataclasses.fields(cls):
        spec = _spec(f)
        if spec.get("section") is not None:
            prop = {**schema_for(spec["section"]), "default": defaults(spec["section"]), "description": spec["doc"]}
        elif spec.get("mapping") is not None:
            prop = {"type": "object", "propertyNames": {"pattern": f"^(?:{spec['key_pattern']})$"},
                    "additionalProperties": schema_for(spec["mapping"]), "default": _plain(_default(f)),
                    "description": spec["doc"]}
        else:
            prop = _scalar_schema(spec)
            if spec["list"]:
                prop = {"type": ["array", "null"] if spec["nullable"] else "array", "items": prop}
                if spec["length"] is not None:
                    prop["minItems"] = prop["maxItems"] = spec["length"]
            prop["default"] = _plain(f.default)
            prop["description"] = spec["doc"] + (f" ({spec['unit']})" if spec["unit"] else "")
        props[f.name] = prop
    return {"type": "object", "additionalProperties": False, "properties": props}


def _scalar_schema(spec: dict) -> dict:
    json_type = _JSON_TYPES[spec["type"]]
    nullable = spec["nullable"] and not spec["list"]
    prop: dict[str, Any] = {"type": [json_type, "null"] if nullable else json_type}
    if spec["choices"] is not None:
        prop["enum"] = list(spec["choices"]) + ([None] if nullable else [])
    if spec["minimum"] is not None:
        prop["minimum"] = spec["minimum"]
    if spec["maximum"] is not None:
        prop["maximum"] = spec["maximum"]
    if spec["above"] is not None:
        prop["exclusiveMinimum"] = spec["above"]
    if spec["pattern"] is not None:
        prop["pattern"] = f"^(?:{spec['pattern']})$"
    return prop


def reference_rows(cls: type) -> list[dict]:
    """One row per parameter: key, default, unit, allowed values, description (for the configuration reference)."""
    return _rows(cls, "")


def _rows(cls: type, prefix: str) -> list[dict]:
    # A nested section's keys are listed after it with dotted names; a mapping gets one row (its default entry
    # names) and the rows of one entry under ``<key>.<name>``.
    rows = []
    for f in dataclasses.fields(cls):
        spec, key = _spec(f), prefix + f.name
        if spec.get("section") is not None:
            rows += _rows(spec["section"], key + ".")
        elif spec.get("mapping") is not None:
            rows.append({"key": key, "default": list(_default(f)), "unit": "", "allowed": _allowed(spec),
                         "doc": spec["doc"]})
            rows += _rows(spec["mapping"], key + ".<name>.")
        else:
            rows.append({"key": key, "default": _plain(f.default), "unit": spec["unit"], "allowed": _allowed(spec),
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
    configured plus the defaults. A nested section is filled key by key; a mapping given in the config replaces
    the default entries, each entry filled with its class's defaults.
    """
    typed = {fam.settings: fam.params for fam in families if fam.params is not None}
    return {section: _filled(cls, config.get(section)) for section, cls in typed.items()}


def _filled(cls: type, given: Any) -> dict:
    given = dict(given) if isinstance(given, Mapping) else {}
    out = {}
    for f in dataclasses.fields(cls):
        spec = _spec(f)
        if f.name not in given:
            out[f.name] = _plain(_default(f))
        elif spec.get("section") is not None and isinstance(given[f.name], Mapping):
            out[f.name] = _filled(spec["section"], given[f.name])
        elif spec.get("mapping") is not None and isinstance(given[f.name], Mapping):
            out[f.name] = {name: _filled(spec["mapping"], entry) if isinstance(entry, Mapping) else entry
                           for name, entry in given[f.name].items()}
        else:
            out[f.name] = given[f.name]
    # Unknown keys stay, so validation still reports them.
    return {**out, **{k: v for k, v in given.items() if k not in out}}
