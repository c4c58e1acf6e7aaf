"""One ranking of classifier labels for every consumer: the classifiers family, caption facts and prompts.

Order: probability, highest first; equal probabilities by label, alphabetically. So a label list is the
same wherever it is ranked (the .INFO's dict order, a caption's genres, a prompt's genres), also when
rounding made two probabilities equal. Standard library only (the Stable Audio Tools module imports it).
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping


def is_negative_label(label: str) -> bool:
    """True for labels that say what the music is not ("non_happy", "not danceable", "no vocals")."""
    return bool(re.match(r"^(non|not|no)[ _-]", label.strip().lower()))


def rank_labels(scores: Mapping[str, float] | Iterable[tuple[str, float]], min_probability: float, max_labels: int,
                drop_negative: bool = False) -> list[tuple[str, float]]:
    """The ``max_labels`` labels with probability >= ``min_probability``, ranked (see the module docstring).

    Parameters
    ----------
    scores : mapping or iterable of (label, probability)
        Probabilities (0-1). Values that are not finite numbers (or are booleans) are ignored.
    min_probability : float
        Labels below this are dropped.
    max_labels : int
        At most this many labels are returned.
    drop_negative : bool
        Also drop :func:`is_negative_label` labels.

    Returns
    -------
    list of (str, float)
        (label, probability), best first.
    """
    items = scores.items() if isinstance(scores, Mapping) else scores
    kept = [(str(label), float(p)) for label, p in items
            if isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and p >= min_probability
            and not (drop_negative and is_negative_label(str(label)))]
    kept.sort(key=lambda item: (-item[1], item[0]))
    return kept[:max(max_labels, 0)]
