"""Feature families: pure computations over decoded audio, and what a family declaration is.

A module of this package declares the families it computes at module level, as ``FAMILY = Family(...)`` or
``FAMILIES = pair(...)`` (a family and its per-stem twin); :mod:`mirflow.registry` finds them there. Adding a
family therefore touches its module, its catalogue entries (``mirflow/catalogue.yaml``) and its tests only.
This package and its modules are imported by the Snakefile at parse time: numpy at most at module level
(scipy, librosa, essentia and the like inside the functions), see tests/test_registry_import.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Family:
    """One feature family: one partial JSON ``features/<name>.json`` per track.

    Attributes
    ----------
    name : str
        Family name, also the partial JSON's file name and the catalogue's ``family``.
    version : int
        Algorithm version. Bump it whenever the numbers this family writes change.
    scope : str
        ``"mix"`` (analyses the full mix) or ``"stems"`` (analyses every stem; keys
        carry a ``_<stem>`` suffix).
    settings : str
        Name of the config section holding this family's parameters (shared by a
        family and its ``_stems`` twin, which run the same algorithm).
    compute : str
        ``"module:function"`` computing the family for one signal, or ``""`` for
        families with their own job script.
    libraries : tuple of str
        Distribution names whose versions are recorded in ``_meta``.
    models : tuple of str
        Names in ``models/manifest.yaml`` the family needs; it is skipped when one is missing.
    needs : tuple of str
        Inputs beyond the full mix: ``"features"`` (the track's other partial JSONs), ``"stems"``
        (skipped for tracks without stems), ``"stem:<name>"``
        (skipped for tracks without that stem), ``"prefer:stems"`` / ``"prefer:stem:<name>"`` (used when the
        track has them, the full mix otherwise), ``"beats"`` (the track's beat grid from the rhythm family,
        used when that family is enabled).
    optional_models : tuple of str
        Models used when present; the keys they produce are absent (with the reason) otherwise.
    any_of_models : tuple of str
        The family is skipped unless at least one of these models is present.
    kind : str
        ``"signal"``: ``compute(signal, settings)`` per signal (mix, or each stem);
        ``"context"``: ``compute(ctx, settings)`` with the job's inputs and outputs (see runner.JobContext).
    lane : str
        ``"cpu"`` or ``"gpu"``. A GPU family is its own job holding the GPU slot (``resources: gpu=1``) and runs
        in the worker's GPU lane; CPU families of a track share one job (see the workflow's job layout).
    outputs : tuple of (str, str)
        Files the family writes besides its partial JSON: (role, path relative to the track's result folder,
        ``{name}`` standing for the track's name; a trailing ``/`` marks a folder).
    params : type or None
        Frozen dataclass of the family's parameters (fields made by :func:`mirflow.params.param`), shared by a
        family and its ``_stems`` twin. The family's compute gets an instance built from the ``settings``
        section (``mirflow.params.from_config``); ``None``: a family not yet converted gets the plain dict.
    """

    name: str
    version: int
    scope: str
    settings: str
    compute: str = ""
    libraries: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""
    models: tuple[str, ...] = field(default_factory=tuple)
    kind: str = "signal"
    needs: tuple[str, ...] = field(default_factory=tuple)
    optional_models: tuple[str, ...] = field(default_factory=tuple)
    any_of_models: tuple[str, ...] = field(default_factory=tuple)
    lane: str = "cpu"
    outputs: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    params: type | None = None

    @property
    def needs_stems(self) -> bool:
        return self.scope == "stems" or any(n == "stems" or n.startswith("stem:") for n in self.needs)

    @property
    def needed_stems(self) -> tuple[str, ...]:
        """Specific stems the family cannot run without (``stem:<name>`` in ``needs``)."""
        return tuple(n.split(":", 1)[1] for n in self.needs if n.startswith("stem:"))


def pair(*, name: str, version: int, compute: str, libraries: tuple[str, ...], description: str,
         params: type | None = None, needs: tuple[str, ...] = ()) -> tuple[Family, Family]:
    """A ``signal`` family of the full mix and its per-stem twin ``<name>_stems``: same algorithm, version,
    settings section (``name``), parameter class and ``needs``; the twin's keys carry a ``_<stem>`` suffix."""
    return (
        Family(name, version, "mix", name, compute, libraries, description, params=params, needs=needs),
        Family(f"{name}_stems", version, "stems", name, compute, libraries, description + " (per stem)",
               params=params, needs=needs),
    )
