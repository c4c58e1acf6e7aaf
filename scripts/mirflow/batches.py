"""Split a collection into batches, each processed by its own Snakemake invocation.

A batch is named ``"i/n"`` (1-based): the sorted track ids cut into ``n`` contiguous
chunks of nearly equal size. The cut depends only on the ids, so the same
collection gives the same batches in every invocation (resuming at batch ``i``
processes exactly the tracks an earlier attempt at ``i`` did).
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable

from .errors import ConfigError

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_batch(spec: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)``; a ConfigError naming the right form otherwise."""
    match = _SPEC.match(str(spec))
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ConfigError(f"batch '{spec}' is not of the form i/n with 1 <= i <= n.",
                          "write e.g. --config batch=3/20 (the third of 20 batches).")
    return int(match[1]), int(match[2])


def batch_bounds(*, count: int, index: int, batches: int) -> tuple[int, int]:
    """Start and end (exclusive) of chunk ``index`` (1-based) of ``count`` items cut into ``batches`` chunks.

    The first ``count % batches`` chunks hold one item more than the others, so sizes differ by at most one.
    """
    size, extra = divmod(count, batches)
    start = (index - 1) * size + min(index - 1, extra)
    return start, start + size + (1 if index <= extra else 0)


def select_batch(track_ids: Iterable[str], spec: str | None) -> list[str]:
    """The track ids of batch ``spec`` (``"i/n"``), sorted; all ids, sorted, when ``spec`` is empty.

    Parameters
    ----------
    track_ids : iterable of str
        Every track id of the collection (any order).
    spec : str or None
        ``"i/n"``, 1-based; None or ``""`` selects everything.

    Returns
    -------
    list of str
        Contiguous chunk ``i`` of the sorted ids; the ``n`` chunks partition the ids.
    """
    ids = sorted(track_ids)
    if not spec:
        return ids
    index, batches = parse_batch(spec)
    start, end = batch_bounds(count=len(ids), index=index, batches=batches)
    return ids[start:end]


def batch_count(*, tracks: int, batch_size: int) -> int:
    """How many batches of at most ``batch_size`` tracks cover ``tracks`` tracks (at least 1)."""
    if batch_size < 1:
        raise ConfigError(f"batch size {batch_size} must be at least 1.", "pass --batch-size 5000 or so.")
    return max(1, math.ceil(tracks / batch_size))
