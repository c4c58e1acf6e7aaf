"""Feature families: pure computations over decoded audio."""
from __future__ import annotations

from collections.abc import Mapping


def merge_params(defaults: dict, params: Mapping | None) -> dict:
    """``params`` over ``defaults``, one level deep: a nested section given in part keeps its other defaults.

    The defaults are copied, never modified.
    """
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in defaults.items()}
    for key, value in (params or {}).items():
        if isinstance(merged.get(key), dict) and isinstance(value, Mapping):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged
