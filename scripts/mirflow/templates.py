"""The one template language of mirflow: prompt templates of the training exports and of the captions.

Syntax (a Python format string with optional parts)::

    "[{genres}, ][{moods}, ]{bpm:.0f} BPM[, {key}]"

* ``{name}`` (``{name:spec}`` where the user allows format specs) is a field;
* a part in ``[...]`` is optional: it is left out when any of its fields has no value;
* a field outside brackets is required: what happens when it has no value is the user's rule (the
  Stable Audio export rejects the file, a caption prompt says "unknown");
* ``[[`` / ``]]`` are literal brackets, ``{{`` / ``}}`` literal braces.

Standard library only (the Stable Audio Tools module imports it inside its data-loader workers).
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TemplateError(ValueError):
    """The prompt template is malformed or a field cannot be formatted with its spec."""


@dataclass(frozen=True)
class Segment:
    """One part of a template: format text, whether it is optional, and the fields it uses."""

    text: str
    optional: bool
    fields: tuple[str, ...]


def _segment(text: str, optional: bool) -> Segment:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as err:
        raise TemplateError(f"bad braces in template part {text!r}: {err}") from None
    names = []
    for _literal, name, _spec, _conv in parsed:
        if name is None:
            continue
        if not _FIELD_NAME.match(name):
            raise TemplateError(f"template field {{{name}}} must be a plain key name (letters, digits, _)")
        names.append(name)
    return Segment(text, optional, tuple(names))


def parse_template(template: str) -> list[Segment]:
    """Split a template into required and optional (``[...]``) segments.

    Raises
    ------
    TemplateError
        On nested or unbalanced brackets, bad braces, or a field that is not a plain name.
    """
    segments: list[Segment] = []
    buf: list[str] = []
    optional = False
    i = 0
    while i < len(template):
        c = template[i]
        if c in "[]" and template[i + 1:i + 2] == c:
            buf.append(c)
            i += 2
            continue
        if c == "[":
            if optional:
                raise TemplateError(f"nested '[' at position {i} in template {template!r}")
            if buf:
                segments.append(_segment("".join(buf), False))
            buf, optional = [], True
        elif c == "]":
            if not optional:
                raise TemplateError(f"']' without '[' at position {i} in template {template!r}")
            if buf:
                segments.append(_segment("".join(buf), True))
            buf, optional = [], False
        else:
            buf.append(c)
        i += 1
    if optional:
        raise TemplateError(f"unclosed '[' in template {template!r}")
    if buf:
        segments.append(_segment("".join(buf), False))
    return segments
