"""Strict, atomic JSON I/O.

Every JSON mirflow writes is strict (no NaN or Infinity, which ``json`` would
otherwise emit and most other parsers reject) and is written to a temporary file
in the target directory and renamed into place, so a killed job never leaves a
half-written file behind.
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MirflowError, ResultFileError

#: Errors that mean "this folder cannot take the file", not "this step is broken".
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


class OutputWriteError(MirflowError):
    """A results folder cannot take a file: disk full, quota, read-only or no permission."""

    def __init__(self, folder: str | os.PathLike, err: OSError):
        self.folder = str(folder)
        reason = os.strerror(err.errno) if err.errno is not None else str(err)
        super().__init__(f"cannot write to the folder '{folder}': {reason} (errno {err.errno}); "
                         "nothing partial was left behind.",
                         "free disk space or make the folder writable (or set results_dir to another "
                         "folder), then run again: the steps that failed are redone.")


def check_writable_folder(folder: str | os.PathLike, probe_bytes: int = 65536) -> None:
    """Raise :class:`OutputWriteError` unless ``folder`` (or, before it exists, its nearest existing parent)
    can take a file of ``probe_bytes``; nothing is created or left behind.

    A write is tried rather than permissions read: root ignores them, and only a write sees a full disk.
    """
    target = Path(folder).absolute()
    while not target.is_dir() and target.parent != target:
        target = target.parent
    try:
        with tempfile.TemporaryFile(dir=target, prefix=".mirflow-write-check.") as handle:
            handle.write(b"\0" * probe_bytes)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        if err.errno in _STORAGE_ERRNOS:
            raise OutputWriteError(folder, err) from None
        raise


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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The prefix is cut to stay within the file system's name limit for the longest track names.
        fd, tmp = tempfile.mkstemp(prefix=f".{_cut_utf8(path.name, 200)}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        if err.errno in _STORAGE_ERRNOS:
            raise OutputWriteError(path.parent, err) from err
        raise
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates the file 0600; results are ordinary files others may read (umask applies).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno in _STORAGE_ERRNOS:
            raise OutputWriteError(path.parent, err) from err
        if isinstance(err, Exception) and not isinstance(err, OSError):
            # Library writers (libsndfile: "System error.") hide the errno: ask the folder itself.
            check_writable_folder(path.parent, probe_bytes=1 << 20)
        raise


def _cut_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, on a character boundary."""
    return text.encode("utf-8", "surrogateescape")[:limit].decode("utf-8", "ignore")


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
    """Read a strict JSON file.

    Raises
    ------
    ResultFileError
        (a ``ValueError``) for anything but strict UTF-8 JSON: bad bytes, bad syntax, NaN/Infinity literals,
        numbers that overflow to infinity, nesting too deep to parse. A missing file raises ``OSError``.
    """

    def _reject(token: str):
        raise ValueError(f"non-standard JSON literal {token}")

    def _finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"number {text[:40]} overflows to infinity")
        return value

    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject, parse_float=_finite)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ResultFileError(path, f"not strict JSON ({type(err).__name__}: {str(err)[:200]})") from None


def read_info(path: str | os.PathLike) -> dict:
    """Read a ``.INFO`` (or partial JSON) file: strict JSON whose top level is an object."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise ResultFileError(path, f"the top level is a {type(value).__name__}, not an object")
    return value
