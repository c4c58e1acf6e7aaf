"""What every feature job does around its computation.

A rule script is one call, e.g. ``run_family_job(snakemake)``. This module loads
the inputs through the shared loader, times the work, records provenance in
``_meta``, writes the partial JSON atomically, and turns failures into one
clear message (track, step, reason, fix) on stderr and in the rule's log, with
a non-zero exit so Snakemake marks the job failed and removes partial outputs.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__
from .audio import AudioSignal, load_audio
from .catalogue import load_catalogue
from .errors import MirflowError
from .jitcache import ensure_warm
from .jobspec import FAILURE_MARKER
from .jsonio import write_json_atomic
from .layout import MERGE_STEP, PROBE_STEP, split_output_name
from .params import from_config
from .registry import FAMILIES, STEM_NAMES, Family
from .registry import family as lookup_family
from .result import FeatureResult

log = logging.getLogger("mirflow")


def library_versions(names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Installed version of each distribution (``"not installed"`` when absent)."""
    return {name: _version(name) for name in names}


@functools.cache
def _version(name: str) -> str:
    # Cached: scanning the installed distributions costs tens of ms, and a warm worker asks once.
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def file_fingerprint(path: str, chunk: int = 1 << 20) -> dict[str, Any]:
    """Size and a quick content hash (sha256 of the first and last MiB plus the size).

    Cheap enough to record for every input of every job, and enough to tell
    which version of a file a value was computed from.
    """
    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(chunk))
        if size > chunk:
            handle.seek(max(size - chunk, chunk))
            digest.update(handle.read(chunk))
    return {"path": os.path.abspath(path), "size_bytes": size, "quick_sha256": digest.hexdigest()}


def audio_facts(signal: AudioSignal) -> dict[str, Any]:
    return {"sample_rate": signal.sample_rate, "channels": signal.channels,
            "duration_s": round(signal.duration_s, 6), "decoder": signal.decoder}


def resolve(dotted: str) -> Callable:
    """Import ``"package.module:function"``."""
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def report_failure(logger: logging.Logger, err: BaseException, *, track: str, step: str,
                   log_path: str | None) -> str:
    """Log one failure (the marker line the summary reads) and say it on stderr; return the reason.

    A :class:`MirflowError` (bad input, missing model...) is reported as its message; anything else is a bug
    and its traceback goes to the log.
    """
    reason = str(err) if isinstance(err, MirflowError) else f"{type(err).__name__}: {err}"
    if not isinstance(err, MirflowError):
        logger.error("unexpected error (a bug; please report it with this log):\n%s", traceback.format_exc())
    logger.error("%s track=%r step=%s reason=%s", FAILURE_MARKER, track, step, reason)
    sys.stderr.write(f"\nmirflow: track '{track}', step '{step}' failed: {reason}\n"
                     + (f"  log: {log_path}\n" if log_path else ""))
    return reason


@contextlib.contextmanager
def job_logging(log_path: str | None, track: str, step: str) -> Iterator[logging.Logger]:
    """Log to the rule's log file; on failure write one clear message and exit non-zero."""
    handlers: list[logging.Handler] = []
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    for h in handlers:
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(h)
    log.setLevel(logging.INFO)
    log.info("track=%s step=%s mirflow=%s", track, step, __version__)
    try:
        yield log
    except (MirflowError, Exception) as err:  # MirflowError listed for readers
        report_failure(log, err, track=track, step=step, log_path=log_path)
        raise SystemExit(1) from err
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()


def build_partial(fam: Family, result: FeatureResult, settings: dict, inputs: dict[str, str],
                  audio: dict[str, dict], wall_time_s: float) -> dict[str, Any]:
    """The partial JSON: the family's values plus its ``_meta`` block."""
    meta = {
        "family": fam.name,
        "version": fam.version,
        "scope": fam.scope,
        "mirflow_version": __version__,
        "params": settings,
        "libraries": library_versions(fam.libraries),
        "inputs": {role: file_fingerprint(path) for role, path in inputs.items()},
        "audio": audio,
        "absent": dict(sorted(result.absent.items())),
        "details": result.meta,
        "wall_time_s": round(wall_time_s, 3),
    }
    return {**result.values, "_meta": meta}


class JobContext:
    """A job's named inputs and outputs, with audio decoded once through the shared loader.

    Families of kind ``"context"`` receive this instead of one signal, so they can
    read several inputs (stems, a beat grid, model files) and write extra outputs
    (grids, MIDI). Every decoded input's facts are recorded for ``_meta.audio``.
    """

    def __init__(self, inputs: dict[str, str], outputs: dict[str, str] | None = None, threads: int = 1,
                 track: str = "", signals: dict[str, AudioSignal] | None = None,
                 unavailable: dict[str, str] | None = None, grids: dict[str, Any] | None = None):
        self.inputs = dict(inputs)
        self.outputs = dict(outputs or {})
        self.threads = threads
        self.track = track
        self.audio_facts: dict[str, dict] = {}
        # Crops hand in audio already in memory (``signals``), stems deliberately left out with their
        # reason (``unavailable``) and grids already sliced (``grids``): the family code is the same.
        self._cache: dict[str, AudioSignal] = dict(signals or {})
        self.unavailable = dict(unavailable or {})
        self.grids = dict(grids or {})

    def has(self, name: str) -> bool:
        return name in self.inputs or name in self._cache

    def path(self, name: str) -> str:
        return self.inputs[name]

    def audio(self, name: str) -> AudioSignal:
        """Decode input ``name`` (once) with the shared loader."""
        if name not in self._cache:
            self._cache[name] = load_audio(self.inputs[name])
            self.audio_facts[name] = audio_facts(self._cache[name])
        return self._cache[name]

    def model_files(self) -> list[str]:
        return [p for k, p in self.inputs.items() if k.startswith("model_file_")]


def for_each_stem(ctx: JobContext, family_name: str, compute_stem: Callable[[AudioSignal, str], FeatureResult]
                  ) -> FeatureResult:
    """Run ``compute_stem(signal, stem)`` on every stem the catalogue lists keys for, suffixing keys.

    Stems that are not available and silent stems get every key of the family
    absent with the reason, so the merged .INFO explains each missing value.
    """
    catalogue = load_catalogue()
    result = FeatureResult()
    for stem in STEM_NAMES:
        keys = catalogue.stem_keys(family_name, stem)
        if not keys:
            continue
        if not ctx.has(stem):
            result.mark_all_absent(keys, ctx.unavailable.get(stem, "stem not available"))
            continue
        signal = ctx.audio(stem)
        if signal.is_digital_silence():
            result.mark_all_absent(keys, "silent stem")
            continue
        stem_result = compute_stem(signal, stem)
        result.update(stem_result, suffix=f"_{stem}")
        result.meta[stem] = stem_result.meta
    return result


def compute_family(fam: Family, settings: dict, ctx: JobContext) -> FeatureResult:
    """Run a family: a ``context`` family gets the job context; a ``signal`` family gets the full mix,
    or each stem in turn for a ``stems`` family."""
    # Before the family's modules import librosa: its numba cache must be warm, not compiled by many jobs at once.
    ensure_warm(log=log.info)
    compute = resolve(fam.compute)
    if fam.params is not None:
        # The one conversion of a config section into the family's typed parameters (defaults for omitted keys).
        settings = from_config(fam.params, settings, where=fam.settings)
    if fam.kind == "context":
        return compute(ctx, settings)
    if fam.scope == "mix":
        return compute(ctx.audio("audio"), settings)
    return for_each_stem(ctx, fam.name, lambda signal, _stem: compute(signal, settings))


def track_id(wildcards) -> str:
    """The track id from a job's wildcards (``track``, or ``parent`` + ``name`` for rules that need the name)."""
    if "track" in wildcards.keys():
        return wildcards.track
    return wildcards.parent + wildcards.name


def _recorded_inputs(inputs: dict[str, str]) -> dict[str, str]:
    """The inputs a partial's ``_meta.inputs`` records: not the verification markers of the model files,
    and not the probe record (it only orders the job after the probe; mirflow.probe)."""
    return {k: v for k, v in inputs.items() if not k.startswith("model_verified_") and k != "probe"}


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def reusable(fam: Family, settings: dict, inputs: dict[str, str], outputs: dict[str, str]) -> bool:
    """Whether the family's existing outputs are what computing it now would write.

    True when its partial JSON and every extra output exist and the partial's ``_meta`` records the same
    family version, parameters, mirflow and library versions, and the same input files (path, size and
    content hash, :func:`file_fingerprint`). A step job keeps such a family's outputs (they are ``update()``
    outputs, which Snakemake leaves in place) instead of computing it again: a change to one family of a
    step recomputes that family only.
    """
    if not all(os.path.exists(path) for path in outputs.values()):
        return False
    try:
        with open(outputs["json"], encoding="utf-8") as handle:
            meta = json.load(handle).get("_meta") or {}
    except (OSError, ValueError, AttributeError):
        return False
    expected = {"family": fam.name, "version": fam.version, "scope": fam.scope, "mirflow_version": __version__,
                "params": _as_json(settings), "libraries": library_versions(fam.libraries)}
    if any(meta.get(key) != value for key, value in expected.items()):
        return False
    try:
        return meta.get("inputs") == {role: file_fingerprint(path) for role, path in _recorded_inputs(inputs).items()}
    except OSError:
        return False


def compute_and_write(fam: Family, settings: dict, inputs: dict[str, str], outputs: dict[str, str], *,
                      threads: int = 1, track: str = "", logger: logging.Logger = log) -> None:
    """Compute one family of one track and write its partial JSON (``outputs["json"]``) and extra outputs.

    The one execution path of a family in a track job (mirflow.layout's steps, the worker and in process alike).
    """
    started = time.perf_counter()
    ctx = JobContext(inputs, outputs, threads, track)
    result = compute_family(fam, settings, ctx)
    partial = build_partial(fam, result, settings, _recorded_inputs(inputs), ctx.audio_facts,
                            time.perf_counter() - started)
    write_json_atomic(outputs["json"], partial)
    logger.info("computed %s in %.2f s: wrote %s (%d values, %d absent)", fam.name, time.perf_counter() - started,
                outputs["json"], len(result.values), len(result.absent))


def run_family_job(smk) -> None:
    """A job computing one family (``params.family``, ``params.settings``): the step job's work for one family."""
    fam = lookup_family(smk.params.family)
    track = track_id(smk.wildcards)
    with job_logging(smk.log[0] if smk.log else None, track, fam.name) as logger:
        inputs = {name: str(path) for name, path in smk.input.items()}
        outputs = {name: str(path) for name, path in smk.output.items()}
        outputs.setdefault("json", str(smk.output[0]))
        compute_and_write(fam, dict(smk.params.settings), inputs, outputs,
                          threads=int(getattr(smk, "threads", 1) or 1), track=track, logger=logger)


def family_outputs(step_outputs: dict[str, str], family: str) -> dict[str, str]:
    """A family's outputs in a step's named outputs (mirflow.layout.output_name): ``json`` and its roles."""
    found = {}
    for name, path in step_outputs.items():
        owner, role = split_output_name(name)
        if owner == family:
            found[role or "json"] = path
    return found


def merge_partials_of(inputs: dict[str, str], outputs: dict[str, str]) -> dict[str, str]:
    """The partial JSONs the merge reads (family -> path), in the registry's order (the .INFO's key order): the
    step's inputs ``features_<family>`` and the partials its own families wrote."""
    found = {name[len("features_"):]: path for name, path in inputs.items() if name.startswith("features_")}
    found.update({name: path for name, path in outputs.items() if name in FAMILIES})
    return {name: found[name] for name in FAMILIES if name in found}


def run_step_job(smk) -> None:
    """Entry point of a step of the job layout (mirflow.layout): probe, families, merge, in that order.

    Each family is computed, or kept when :func:`reusable`; a failing family is reported with its own name as
    the step (the summary lists it) and the others still run, so their results are kept for the rerun. The job
    fails when any family failed. ``params``: ``step``, ``families``, ``settings`` and ``inputs`` (family ->
    its input names), ``probe`` (input names to decode first); for the merge: ``merge`` (``missing``: the key of
    the track's set of reasons in ``missing_reasons``) and ``resolved`` (the resolved keys' rules).
    """
    params = smk.params
    track = track_id(smk.wildcards)
    log_path = smk.log[0] if smk.log else None
    inputs = {name: str(path) for name, path in smk.input.items()}
    outputs = {name: str(path) for name, path in smk.output.items()}
    threads = int(getattr(smk, "threads", 1) or 1)
    failed: dict[str, str] = {}
    with job_logging(log_path, track, params.step) as logger:
        if params.probe:
            try:
                probe_step(track, {role: inputs[role] for role in params.probe}, outputs["probe"], logger=logger)
            except (MirflowError, Exception) as err:  # MirflowError listed for readers
                report_failure(logger, err, track=track, step=PROBE_STEP, log_path=log_path)
                raise SystemExit(1) from err
        for name in params.families:
            fam = lookup_family(name)
            settings = dict(params.settings[name])
            fam_inputs = {role: inputs[role] for role in params.inputs[name]}
            fam_outputs = family_outputs(outputs, name)
            # A family reading the beat grid cannot run when the family writing it failed in this step.
            blocked = [n for n in failed if "beats" in fam.needs and "beats" in dict(lookup_family(n).outputs)]
            if blocked:
                failed[name] = report_failure(logger, MirflowError(f"not computed: {blocked[0]} failed, and "
                                              f"{name} reads its beat grid"), track=track, step=name,
                                              log_path=log_path)
                continue
            if reusable(fam, settings, fam_inputs, fam_outputs):
                logger.info("kept %s: computed before from the same inputs, version and parameters", name)
                continue
            try:
                compute_and_write(fam, settings, fam_inputs, fam_outputs, threads=threads, track=track,
                                  logger=logger)
            except (MirflowError, Exception) as err:  # MirflowError listed for readers
                failed[name] = report_failure(logger, err, track=track, step=name, log_path=log_path)
        if failed:
            raise SystemExit(1)
        if params.merge:
            try:
                from .merge import write_info

                write_info(track, merge_partials_of(inputs, outputs), outputs["info"],
                           missing=dict(params.missing_reasons[params.merge["missing"]]),
                           resolved=dict(params.resolved), logger=logger)
            except (MirflowError, Exception) as err:  # MirflowError listed for readers
                report_failure(logger, err, track=track, step=MERGE_STEP, log_path=log_path)
                raise SystemExit(1) from err


def probe_step(track: str, paths: dict[str, str], record: str, *, logger: logging.Logger = log) -> None:
    """Decode the track's inputs (mirflow.probe) and write the probe record, unless the record on disk is newer
    than every input and lists the same files and sizes (a step rerun for another reason does not decode
    the track again)."""
    from .probe import PROBE_VERSION, probe_inputs, probe_record_current

    if probe_record_current(record, paths):
        logger.info("kept the probe record %s: the inputs are unchanged", record)
        return
    facts = probe_inputs(paths)
    write_json_atomic(record, {"track": track, "version": PROBE_VERSION, "inputs": facts})
    logger.info("decoded %d input(s): %s", len(facts),
                ", ".join(f"{k} {v['duration_s']:.1f} s" for k, v in facts.items()))
