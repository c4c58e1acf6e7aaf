"""The job layout: which families of a track share one Snakemake job, derived from the registry.

Snakemake's bookkeeping costs about 2 ms and 25 KB per job in the DAG, whatever the job does: one job per
(track x family) put 120,000 jobs and 3.5 minutes of planning in front of a 10,000-track run. So the families
of a track that always run together share a job (a *step*), and each family still writes its own partial
JSON, as an ``update()`` output: the step reads a family's existing partial and keeps it when its ``_meta``
says it was computed from the same inputs, version, parameters and libraries (:func:`mirflow.runner.reusable`).
A change to one family's settings or version reruns its step, and only that family is computed again.

A step may bundle families only when, for every track, they are either all planned or all not (the rule's
outputs are fixed when the workflow is parsed):

``track_features``
    Every track: the decode check of its inputs (the probe) and every CPU family of the full mix.
``stem_features``
    Tracks with stems: the CPU families that run on every stem the track has.
``gpu_features``
    Every track: the GPU families of the full mix (one GPU slot, the models warm in the worker).
``<family>``
    A family planned per track on its own terms (it needs one particular stem, or the GPU and the stems).
    Also a GPU family that reads the other families' results (Music Flamingo).
``track_info``
    Every track, last: the CPU families that read the other families' results (feature captions) and the
    merge into ``<name>.INFO``.

Crops stay their own job (``crops``): a crop failure must not take the track's .INFO with it.

The probe step's record (``logs/probe.json``) stands for all of its outputs in the jobs that read them (the
other steps, the merge, the crops): they declare the record and carry the partials and grids in their job spec,
about 10 paths fewer per track in the DAG. :func:`forget_incomplete_records` keeps the record honest.
Parse-time module: standard library and the registry only.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .registry import Family

TRACK_FEATURES = "track_features"
STEM_FEATURES = "stem_features"
GPU_FEATURES = "gpu_features"
TRACK_INFO = "track_info"
#: The step that probes a track's inputs; its failures are reported as this step (as before the layout).
PROBE_STEP = "probe_audio"
#: The step name of the merge inside ``track_info``.
MERGE_STEP = "merge_info"


@dataclass(frozen=True)
class Step:
    """One rule of the per-track layout.

    Attributes
    ----------
    rule : str
        Rule name (and log name: ``<track>/logs/<rule>.log``).
    families : tuple of str
        Families the step computes, in the order it computes them.
    lane : str
        ``"cpu"`` or ``"gpu"`` (a GPU step holds ``resources: gpu=1`` and runs in the worker's GPU lane).
    probe : bool
        The step decodes the track's inputs first and writes ``logs/probe.json`` (``track_features``).
    merge : bool
        The step merges every partial JSON of the track into ``<name>.INFO`` after its families.
    every_track : bool
        The step runs for every track; otherwise for the tracks whose plan includes its families.
    """

    rule: str
    families: tuple[str, ...]
    lane: str = "cpu"
    probe: bool = False
    merge: bool = False
    every_track: bool = True


def _reads_results(fam: Family) -> bool:
    return "features" in fam.needs


def _uniform_with_stems(fam: Family) -> bool:
    """Planned for exactly the tracks that have stems (any stems): no particular stem required."""
    return fam.needs_stems and not fam.needed_stems


def job_layout(families: Mapping[str, Family], planned: Iterable[str]) -> tuple[Step, ...]:
    """The steps of every track, in dependency order, for the families planned at all.

    Parameters
    ----------
    families : mapping
        Family name -> :class:`~mirflow.registry.Family`, in registry order (the order within a step).
    planned : iterable of str
        Families enabled in the config whose models are available: the same for every track (whether a
        track has stems is decided per track, by the step's ``every_track`` and the family's ``needs``).

    Returns
    -------
    tuple of Step
        ``track_features`` and ``track_info`` always (the probe and the merge run for every track); the
        others when they have families.
    """
    wanted = set(planned)
    chosen = [f for f in families.values() if f.name in wanted]
    track: list[str] = []
    stems: list[str] = []
    gpu: list[str] = []
    own: list[str] = []
    info: list[str] = []
    for fam in chosen:
        if _reads_results(fam):
            (own if fam.lane == "gpu" else info).append(fam.name)
        elif fam.lane == "gpu":
            (own if fam.needs_stems else gpu).append(fam.name)
        elif not fam.needs_stems:
            track.append(fam.name)
        elif _uniform_with_stems(fam):
            stems.append(fam.name)
        else:
            own.append(fam.name)
    steps = [Step(TRACK_FEATURES, _beats_first(families, track), probe=True)]
    if stems:
        steps.append(Step(STEM_FEATURES, _beats_first(families, stems), every_track=False))
    if gpu:
        steps.append(Step(GPU_FEATURES, _beats_first(families, gpu), lane="gpu"))
    # Own steps that read other results (Music Flamingo) come after those that do not.
    steps += [Step(name, (name,), lane=families[name].lane, every_track=False)
              for name in sorted(own, key=lambda n: _reads_results(families[n]))]
    steps.append(Step(TRACK_INFO, tuple(info), merge=True))
    return tuple(steps)


def _beats_first(families: Mapping[str, Family], names: list[str]) -> tuple[str, ...]:
    """Registry order, except that the family writing the beat grid comes before those reading it."""
    if "rhythm" not in names:
        return tuple(names)
    return tuple(sorted(names, key=lambda n: n != "rhythm" and "beats" in families[n].needs))


def step_of_family(layout: Iterable[Step], family: str) -> Step:
    """The step that computes ``family``."""
    for step in layout:
        if family in step.families:
            return step
    raise KeyError(f"family '{family}' is in no step of the job layout (is it planned?)")


def output_name(family: str, role: str | None = None) -> str:
    """Name of a family's output in its step's rule: the family for its partial JSON, else ``<family>__<role>``."""
    return family if role is None else f"{family}__{role}"


def split_output_name(name: str) -> tuple[str, str | None]:
    """Inverse of :func:`output_name`: (family, role or None)."""
    family, sep, role = name.partition("__")
    return family, (role if sep else None)


#: Cluster group layers (workflow/profiles/slurm: ``group-components`` per layer). Each layer only waits on
#: earlier ones, so no group job waits on a group that waits on it: stem separation (GPU, audio only); the CPU
#: steps that read audio (features of the mix and stems, Basic Pitch); the GPU steps (they read the beat grid or
#: the features); the merge and the crops.
SEPARATION_LAYER, SIGNAL_LAYER, LISTEN_LAYER, FINISH_LAYER = "models", "signal", "listen", "finish"


def cluster_layer(step: Step) -> str:
    """The cluster group layer of a step: ``listen`` for a GPU step, ``finish`` for the merge, else ``signal``."""
    if step.lane == "gpu":
        return LISTEN_LAYER
    return FINISH_LAYER if step.merge else SIGNAL_LAYER


def isolated_group(layer: str, track_id: str) -> str:
    """The group of a track's jobs of one layer when the track runs alone (a failure in its last run).

    Snakemake fails a whole group job when one of its jobs fails, and does not start a group job until every
    member's inputs exist: a track that fails would hold back the other tracks of its groups in every run. A
    group name of its own holds one track (``group-components`` names only the shared layers).
    """
    digest = hashlib.sha256(track_id.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{layer}{_ALONE}{digest}"


_ALONE = "_alone_"


def is_shared_group(group: str) -> bool:
    """Whether a cluster group may hold several tracks (a layer's group, not one of :func:`isolated_group`)."""
    return _ALONE not in group


def forget_incomplete_records(track_dirs: Iterable[str], *, record: str, products: Iterable[str],
                              names: Iterable[str]) -> list[str]:
    """Remove a step's record from every track folder where one of the step's other outputs is missing.

    Jobs that read a step's outputs declare only its record, so Snakemake reruns the step for a missing record
    but never looks for the other outputs; with the record removed, a partial deleted by hand is computed again
    before anything reads it.

    Parameters
    ----------
    track_dirs : iterable of str
        The tracks' result folders.
    record : str
        The record's path relative to a track folder (``logs/probe.json``).
    products : iterable of str
        The step's other outputs relative to a track folder; ``{name}`` stands for the track's name.
    names : iterable of str
        The tracks' names, in the order of ``track_dirs``.

    Returns
    -------
    list of str
        The records removed.
    """
    products = tuple(products)
    removed = []
    for folder, name in zip(track_dirs, names):
        path = os.path.join(folder, record)
        if not os.path.exists(path):
            continue
        if all(os.path.exists(os.path.join(folder, rel.replace("{name}", name))) for rel in products):
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:  # a concurrent run on the same results folder removed it first
            pass
        removed.append(path)
    return removed
