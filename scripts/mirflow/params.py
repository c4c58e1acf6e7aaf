"""Typed family parameters: one frozen dataclass per family, the only source of defaults, ranges and units.

A family declares its parameters as a frozen dataclass whose fields are made by :func:`param` (a value or a list),
:func:`section` (a nested mapping of fixed keys) or :func:`mapping` (named entries of one parameter class, an open
set of names such as prompts). From that one
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
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}
#: Torch device names a ``device`` parameter accepts ("auto": a CUDA/ROCm GPU when torch sees one, else the CPU).
DEVICE_PATTERN = r"auto|cpu|cuda(:[0-9]+)?"


def param(default: Any, *, unit: str = "", doc: str, minimum: float | None = None, maximum: float | None = None,
          choices: tuple | None = None, nullable: bool = False, above: float | None = None,
          below: float | None = None, item: type | None = None, length: int | None = None,
          min_items: int = 0, pattern: str | None = None, kind: type | None = None) -> Any:
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
    above, below : float, optional
        Exclusive bounds (a duration must be ``above=0``).
    nullable : bool
        ``None`` is allowed (meaning "automatic" or "off"; say which in ``doc``).
    item : type, optional
        For a tuple default (a list in the config): the type of its items (bool, int, float or str); taken from the
        first item when omitted. ``minimum``, ``maximum``, ``above``, ``below`` and ``choices`` then bound each item.
    length : int, optional
        For a tuple: the exact number of items (2 for a ``[low, high]`` pair).
    min_items : int
        For a tuple: the least number of items.
    pattern : str, optional
        Regular expression a string (or each string item) must match in full, e.g. :data:`DEVICE_PATTERN`.
    kind : type, optional
        The type of a scalar whose default does not give it: a nullable string is ``param(None, kind=str, ...)``.
    """
    if default is None and not nullable:
        raise TypeError("a parameter defaulting to None must be nullable=True")
    is_list = isinstance(default, tuple)
    if is_list:
        kind = item or (type(default[0]) if default else None)
        if kind is None:
            raise TypeError("an empty tuple default needs item= (the type of its items)")
    elif isinstance(default, list):
        raise TypeError("a list parameter defaults to a tuple (parameter objects are immutable)")
    else:
        kind = type(default) if default is not None else (type(choices[0]) if choices else (kind or float))
    if kind not in _JSON_TYPES:
        raise TypeError(f"parameter type {kind.__name__} is not supported (bool, int, float, str)")
    meta = {_META: {"unit": unit, "doc": doc, "minimum": minimum, "maximum": maximum, "above": above,
                    "below": below, "choices": tuple(choices) if choices is not None else None,
                    "nullable": nullable, "type": kind, "list": is_list, "length": length,
                    "min_items": min_items, "section": None, "mapping": None, "pattern": pattern}}
    return dataclasses.field(default=default, metadata=meta)


def section(default: Any, *, doc: str) -> Any:
    """A dataclass field holding a nested parameter section (a mapping in the config).

    Parameters
    ----------
    default : dataclass instance
        The section's defaults: an instance of a parameter class (fields made by :func:`param`). Two fields may
        share one class with different defaults (``harmony.chroma`` and ``harmony.hpcp``).
    doc : str
        One-line description of the section.
    """
    if not dataclasses.is_dataclass(default) or isinstance(default, type):
        raise TypeError("a section's default is an instance of a parameter class")
    meta = {_META: {"doc": doc, "section": type(default), "unit": "", "mapping": None}}
    return dataclasses.field(default=default, metadata=meta)


def mapping(cls: type, default: Mapping[str, Mapping], *, doc: str, names: str = r"[a-z0-9_]+",
            min_entries: int = 0) -> Any:
    """A dataclass field holding named entries of one parameter class (an open set of names, e.g. prompts).

    The object holds a read-only mapping name -> ``cls`` instance. A config's entries are merged over the default
    entries by name, as a config file is merged over another (an entry's keys over those of the default entry of
    that name, a new name's over ``cls``'s defaults); a null entry drops that name.

    Parameters
    ----------
    cls : type
        Parameter class of one entry (fields made by :func:`param`).
    default : mapping
        The default entries: name -> mapping of ``cls``'s keys.
    doc : str
        One-line description.
    names : str
        Regular expression every entry name must match in full (names often end up in feature keys).
    min_entries : int
        Fewest entries a config may leave (after dropping names with null).
    """
    entries = {name: _build(cls(), values, f"<default {cls.__name__}>.{name}") for name, values in default.items()}
    meta = {_META: {"doc": doc, "section": None, "mapping": cls, "names": names, "unit": "",
                    "min_entries": min_entries}}
    return dataclasses.field(default_factory=lambda: MappingProxyType(dict(entries)), metadata=meta)


def _spec(f: dataclasses.Field) -> dict:
    try:
        return f.metadata[_META]
    except KeyError:
        raise TypeError(f"field '{f.name}' was not declared with mirflow.params.param") from None


def _allowed(spec: dict) -> str:
    if spec["section"] is not None:
        return "a mapping (keys below)"
    if spec["mapping"] is not None:
        return f"a mapping of names ({spec['names']}) to entries (keys below)"
    plural = "s" if spec["list"] else ""
    if spec["choices"] is not None:
        text = ("each " if spec["list"] else "") + "one of " + ", ".join(repr(c) for c in spec["choices"])
    else:
        name = _JSON_TYPES[spec["type"]]
        text = (f"{name}{plural}" if spec["list"] else "a" + ("n " if spec["type"] is int else " ") + name)
        if spec["minimum"] is not None:
            text += f" >= {spec['minimum']}"
        if spec["above"] is not None:
            text += f" > {spec['above']}"
        if spec["maximum"] is not None:
            text += f" <= {spec['maximum']}"
        if spec["below"] is not None:
            text += f" < {spec['below']}"
        if spec["pattern"] is not None:
            text += f" matching {spec['pattern']}"
    if spec["unit"]:
        text += f" ({spec['unit']})"
    if spec["list"]:
        count = (f"{spec['length']} " if spec["length"] is not None
                 else f"at least {spec['min_items']} " if spec["min_items"] else "")
        text = f"a list of {count}" + (f"values, {text}" if spec["choices"] is not None else text)
    return text + (" or null" if spec["nullable"] else "")


def _check(value: Any, spec: dict, key: str) -> Any:
    """``value`` converted to the field's type (an integer is a valid float, a list a tuple), or a ConfigError
    naming ``key``."""
    bad = ConfigError(f"config key '{key}' is {value!r}; allowed: {_allowed(spec)}.",
                      f"set '{key}' to {_allowed(spec)} in your config, or remove it to use the default.")
    if value is None:
        if spec["nullable"]:
            return None
        raise bad
    if spec["list"]:
        if not isinstance(value, (list, tuple)) or len(value) < spec["min_items"] \
                or (spec["length"] is not None and len(value) != spec["length"]):
            raise bad
        item_spec = {**spec, "list": False, "nullable": False}
        try:
            return tuple(_check(v, item_spec, key) for v in value)
        except ConfigError:
            raise bad from None
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
    if spec["below"] is not None and value >= spec["below"]:
        raise bad
    if spec["pattern"] is not None and not re.fullmatch(spec["pattern"], value):
        raise bad
    return value


def from_config(cls: type, section: Mapping | None, *, where: str) -> Any:
    """The parameter object of ``cls`` from one config section; omitted keys take the dataclass defaults.

    Parameters
    ----------
    cls : type
        A frozen dataclass whose fields were made by :func:`param` (or :func:`section` for a nested mapping).
    section : mapping or None
        The config section (``None``: all defaults). A nested mapping may name only some of its keys: the
        others keep the nested section's defaults.
    where : str
        The section's name in the config, used in error messages (``"spectral"`` gives ``spectral.hop_length``).

    Raises
    ------
    ConfigError
        For an unknown key (naming the known ones) or a value of the wrong type, out of range or not a choice
        (naming the key, nested keys with dots, and what is allowed).
    """
    return _build(cls(), section, where)


def _build(base: Any, section: Mapping | None, where: str) -> Any:
    """``base`` (a parameter object) with the values of ``section`` checked and put in."""
    fields = {f.name: f for f in dataclasses.fields(base)}
    if section is not None and not isinstance(section, Mapping):
        raise ConfigError(f"config key '{where}' is {section!r}; allowed: a mapping of {', '.join(fields)}.",
                          f"write '{where}' as a mapping, or remove it to use the defaults.")
    section = dict(section or {})
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(f'{where}.{k}' for k in unknown)}.",
                          f"known keys of '{where}': {', '.join(fields)}.")
    values = {}
    for name, f in fields.items():
        if name not in section:
            continue
        spec = _spec(f)
        key = f"{where}.{name}"
        if spec["section"] is not None:
            values[name] = _build(getattr(base, name), section[name], key)
        elif spec["mapping"] is not None:
            values[name] = _entries(spec, getattr(base, name), section[name], key)
        else:
            values[name] = _check(section[name], spec, key)
    return dataclasses.replace(base, **values)


def _entries(spec: dict, base: Mapping, given: Any, key: str) -> MappingProxyType:
    """The named entries of a :func:`mapping` field: ``given`` (from the config) merged over ``base`` by name."""
    if not isinstance(given, Mapping):
        raise ConfigError(f"config key '{key}' is {given!r}; allowed: {_allowed(spec)}.",
                          f"write '{key}' as a mapping of names to entries, or remove it to use the defaults.")
    for name in given:
        if not isinstance(name, str) or not re.fullmatch(spec["names"], name):
            raise ConfigError(f"config key '{key}' has the entry name {name!r}, which is not usable in a key.",
                              f"name the entries of '{key}' with {spec['names']}.")
    entries = dict(base)
    for name, entry in given.items():
        if entry is None:
            entries.pop(name, None)
        else:
            entries[name] = _build(entries.get(name, spec["mapping"]()), entry, f"{key}.{name}")
    if len(entries) < spec.get("min_entries", 0):
        raise ConfigError(f"config key '{key}' leaves {len(entries)} entries; at least {spec['min_entries']} needed.",
                          f"keep at least one entry of '{key}' (null drops one), or switch the family off.")
    return MappingProxyType(entries)


def _plain(value: Any) -> Any:
    """A parameter value in its config (JSON) form: a nested section as a dict, a tuple as a list."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return as_dict(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, MappingProxyType):
        return {k: _plain(v) for k, v in value.items()}
    return value


def as_dict(obj: Any) -> dict:
    """The parameters as a plain dict in declaration order (for ``_meta.params`` and the resolved config):
    nested sections as dicts, tuples as lists, as the config writes them."""
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def defaults(cls: type) -> dict:
    """The default values of ``cls`` as a plain dict in declaration order (see :func:`as_dict`)."""
    return as_dict(cls())


def _value_schema(spec: dict) -> dict[str, Any]:
    json_type = _JSON_TYPES[spec["type"]]
    prop: dict[str, Any] = {"type": [json_type, "null"] if spec["nullable"] and not spec["list"] else json_type}
    if spec["choices"] is not None:
        prop["enum"] = list(spec["choices"]) + ([None] if spec["nullable"] and not spec["list"] else [])
    for key, schema_key in (("minimum", "minimum"), ("maximum", "maximum"), ("above", "exclusiveMinimum"),
                            ("below", "exclusiveMaximum")):
        if spec[key] is not None:
            prop[schema_key] = spec[key]
    if spec["pattern"] is not None:
        prop["pattern"] = f"^(?:{spec['pattern']})$"
    return prop


def _schema(base: Any) -> dict:
    props = {}
    for f in dataclasses.fields(base):
        spec = _spec(f)
        default = getattr(base, f.name)
        if spec["section"] is not None:
            prop = _schema(default)
        elif spec["mapping"] is not None:
            prop = {"type": "object", "propertyNames": {"pattern": f"^(?:{spec['names']})$"},
                    # an entry is an object, or null (dropping that name)
                    "additionalProperties": {**_schema(spec["mapping"]()), "type": ["object", "null"]}}
        elif spec["list"]:
            prop = {"type": ["array", "null"] if spec["nullable"] else "array", "items": _value_schema(spec)}
            if spec["min_items"]:
                prop["minItems"] = spec["min_items"]
            if spec["length"] is not None:
                prop["minItems"] = prop["maxItems"] = spec["length"]
        else:
            prop = _value_schema(spec)
        prop["default"] = _plain(default)
        prop["description"] = spec["doc"] + (f" ({spec['unit']})" if spec["unit"] else "")
        props[f.name] = prop
    return {"type": "object", "additionalProperties": False, "properties": props}


def schema_for(cls: type) -> dict:
    """The JSON-schema section (``type: object``, no extra keys) validating a config section of ``cls``;
    a nested section is a nested object schema with its own defaults."""
    return _schema(cls())


def _rows(base: Any, prefix: str) -> list[dict]:
    rows = []
    for f in dataclasses.fields(base):
        spec = _spec(f)
        default = getattr(base, f.name)
        if spec["section"] is not None:
            rows += _rows(default, f"{prefix}{f.name}.")
            continue
        if spec["mapping"] is not None:  # one row naming the default entries, then the keys of an entry
            rows.append({"key": prefix + f.name, "default": list(default), "unit": "", "allowed": _allowed(spec),
                         "doc": spec["doc"]})
            rows += _rows(spec["mapping"](), f"{prefix}{f.name}.<name>.")
            continue
        rows.append({"key": prefix + f.name, "default": _plain(default), "unit": spec["unit"],
                     "allowed": _allowed(spec), "doc": spec["doc"]})
    return rows


def reference_rows(cls: type) -> list[dict]:
    """One row per parameter: key, default, unit, allowed values, description (for the configuration reference).
    The parameters of a nested section are rows of their own, keyed ``section.key``."""
    return _rows(cls(), "")


def with_family_sections(base: dict, families: Iterable) -> dict:
    """``base`` (the loaded config schema) with the section of every typed family generated from its parameters,
    and the ``families`` section (one boolean switch per family) generated from the families.

    The base schema keeps a placeholder (``{type: object}``) for such a section, so that the file alone still
    accepts a config naming it; the generated section is the one that validates. A typed section is not required:
    a config without it gets the defaults (:func:`fill_defaults`); a family without a switch is on.
    """
    families = list(families)
    schema = dict(base)
    props = dict(schema.get("properties", {}))
    # The switches follow the registry, so that a new family's own module is its one definition (issue 15).
    props["families"] = {**props.get("families", {}), "type": "object", "additionalProperties": False,
                         "properties": {fam.name: {"type": "boolean"} for fam in families}}
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
    configured plus the defaults. The entries of a :func:`mapping` are merged over its default entries by name
    (a null entry, which drops that name, is kept as written).
    """
    typed = {fam.settings: fam.params for fam in families if fam.params is not None}
    return {section: _filled(cls(), config.get(section)) for section, cls in typed.items()}


def _filled(base: Any, given: Any) -> dict:
    """``given`` over the values of ``base`` (a parameter object), a nested section key by key (the user's values
    as written; an unknown key is kept for validation to report)."""
    filled = as_dict(base)
    specs = {f.name: _spec(f) for f in dataclasses.fields(base)}
    for key, value in dict(given or {}).items():
        spec = specs.get(key)
        if spec is not None and isinstance(value, Mapping) and spec["section"] is not None:
            filled[key] = _filled(getattr(base, key), value)
        elif spec is not None and isinstance(value, Mapping) and spec["mapping"] is not None:
            entries = getattr(base, key)
            filled[key] = {**filled[key], **{
                name: _filled(entries.get(name, spec["mapping"]()), entry) if isinstance(entry, Mapping) else entry
                for name, entry in value.items()}}
        else:
            filled[key] = value
    return filled
