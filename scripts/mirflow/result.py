"""The container every feature computation returns."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FeatureResult:
    """Values of one feature family for one signal, plus why any value is absent.

    A value that cannot be computed is never replaced by a placeholder: it is
    left out of ``values`` and ``absent[key]`` says why ("silent", "too short",
    "timeout", ...). ``meta`` carries family-specific facts for ``_meta``
    (effective band edges, which input was analysed, ...).
    """

    values: dict[str, Any] = field(default_factory=dict)
    absent: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def set(self, key: str, value: Any) -> None:
        """Record ``value`` for ``key``; a NaN/inf float is a bug in the caller."""
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{key}: non-finite value {value}; record it with mark_absent instead")
        self.values[key] = value
        self.absent.pop(key, None)

    def mark_absent(self, key: str, reason: str) -> None:
        """Record that ``key`` has no value, and why."""
        self.values.pop(key, None)
        self.absent[key] = reason

    def mark_all_absent(self, keys, reason: str) -> None:
        """Record the same reason for every key in ``keys``."""
        for key in keys:
            self.mark_absent(key, reason)

    def update(self, other: FeatureResult, suffix: str = "") -> None:
        """Merge ``other`` into this result, appending ``suffix`` to every key."""
        for key, value in other.values.items():
            self.set(key + suffix, value)
        for key, reason in other.absent.items():
            self.mark_absent(key + suffix, reason)
