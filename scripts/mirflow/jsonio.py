"""Strict, atomic JSON I/O.

Every JSON mirflow writes is strict (no NaN or Infinity, which ``json`` would
otherwise emit and most other parsers reject) and is written to a temporary file
in the target directory and renamed into place, so a killed job never leaves a
half-written file behind.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


class NonFiniteValueError(ValueError):
    """A value to be written is NaN or infinite: it must be absent instead."""


def to_jsonable(value: Any, where: str = "$") -> Any:
    """Convert numpy scalars/arrays and tuples to plain JSON types.

    Raises
    ------
    NonFiniteValueError
        If any float is NaN or infinite. The caller must record such a value as
        absent with a reason rather than write a placeholder.
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist(), where)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if not math.isfinite(f):
            raise NonFiniteValueError(f"non-finite value {f} at {where}")
        return f
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"cannot serialise {type(value).__name__} at {where}")


def dumps_strict(obj: Any, inline_from: int | None = None) -> str:
    """Serialise ``obj`` as strict, human-readable JSON (UTF-8 text, keys in insertion order).

    With ``inline_from``, objects nested ``inline_from`` levels deep (the top level is 0) and every list
    of scalars are written on one line: the same JSON, a fraction of the whitespace of deep nesting.
    """
    plain = to_jsonable(obj)
    if inline_from is None:
        return json.dumps(plain, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return _dumps_nested(plain, 0, inline_from) + "\n"


def _dumps_nested(obj: Any, level: int, inline_from: int) -> str:
    flat = isinstance(obj, list) and not any(isinstance(v, (dict, list)) for v in obj)
    if level >= inline_from or not isinstance(obj, (dict, list)) or not obj or flat:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False)
    pad, end = "  " * (level + 1), "  " * level
    if isinstance(obj, dict):
        items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {_dumps_nested(v, level + 1, inline_from)}"
                 for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + end + "}"
    return "[\n" + ",\n".join(pad + _dumps_nested(v, level + 1, inline_from) for v in obj) + "\n" + end + "]"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary file name beside ``path``; on success the file is renamed to ``path``.

    Any writer (text, JSON, MIDI, soundfile) writes to the yielded name; a failure
    or a kill leaves no partial ``path`` behind, and the temporary file is removed.
    Writers that infer the format from the extension must be given it explicitly.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates the file 0600; results are ordinary files others may read (umask applies).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, inline_from: int | None = None) -> None:
    """Serialise ``obj`` strictly (see :func:`dumps_strict`) and write it atomically to ``path``."""
    write_text_atomic(path, dumps_strict(obj, inline_from))


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, rejecting NaN/Infinity literals."""

    def _reject(token: str):
        raise ValueError(f"{path}: non-standard JSON literal {token}")

    with open(path, encoding="utf-8") as handle:
        return json.load(handle, parse_constant=_reject)
