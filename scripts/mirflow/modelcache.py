"""Models loaded once per process and reused by every later job in it.

In the in-process path a job is its own process, so the cache only holds for that job.
In a warm worker (``mirflow.worker``) the loads happen in the long-lived process (the CPU
lane's preloaded parent before it forks a job, or the GPU lane's persistent executor), so
a model is loaded once per worker however many tracks use it. Every load is logged on the
``mirflow.models`` logger as ``model-load kind=... path=... count=N`` (N counts loads of
that key in this process); the worker's log therefore shows how often each model was read.
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

log = logging.getLogger("mirflow.models")
_CACHE: dict[tuple, Any] = {}
#: Loads per cache key in this process (the tests and the worker's log read it).
LOADS: Counter = Counter()


def file_key(paths: str | os.PathLike | list | tuple) -> tuple:
    """Identity of model files: real path, size and mtime (a replaced file is a new model)."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    key = []
    for p in items:
        real = os.path.realpath(p)
        st = os.stat(real)
        key.append((real, st.st_size, st.st_mtime_ns))
    return tuple(key)


def cached_model(kind: str, paths: str | os.PathLike | list | tuple, loader: Callable[[], Any],
                 *options: Any) -> Any:
    """``loader()``'s result, loaded on the first call for these files and options only.

    Parameters
    ----------
    kind : str
        Name of the model family (``"basic_pitch"``, ``"adtof"``...), for the log.
    paths : path or list of paths
        The files the model is read from; their size and mtime are part of the key.
    loader : callable
        Loads the model (no arguments).
    *options
        Anything else the loaded object depends on (device, threads...); part of the key.
    """
    key = (kind, file_key(paths), options)
    if key not in _CACHE:
        started = time.perf_counter()
        _CACHE[key] = loader()
        LOADS[key] += 1
        first = key[1][0][0] if key[1] else ""
        log.info("model-load kind=%s path=%s options=%s count=%d pid=%d load_s=%.3f", kind, first, options,
                 LOADS[key], os.getpid(), time.perf_counter() - started)
    return _CACHE[key]


def clear() -> None:
    """Forget every cached model (tests)."""
    _CACHE.clear()
    LOADS.clear()
