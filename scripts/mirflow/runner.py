"""What every feature job does around its computation.

A rule script is one call, e.g. ``run_family_job(snakemake)``. This module loads
the inputs through the shared loader, times the work, records provenance in
``_meta``, writes the partial JSON atomically, and turns failures into one
clear message (track, step, reason, fix) on stderr and in the rule's log, with
a non-zero exit so Snakemake marks the job failed and removes partial outputs.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import os
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

from . import __version__
from .audio import AudioSignal, load_audio
from .catalogue import load_catalogue
from .errors import MirflowError
from .jsonio import write_json_atomic
from .registry import STEM_NAMES, Family, family as lookup_family
from .result import FeatureResult

#: Marker a failed job leaves in its log; `python -m mirflow.summary` lists them.
FAILURE_MARKER = "MIRFLOW-FAILED"
log = logging.getLogger("mirflow")


def library_versions(names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Installed version of each distribution (``"not installed"`` when absent)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


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


@contextlib.contextmanager
def job_logging(log_path: str | None, track: str, step: str) -> Iterator[logging.Logger]:
    """Log to the rule's log file; on failure write one clear message and exit non-zero.

    A :class:`MirflowError` (bad input, missing model...) is reported as its
    message; anything else is a bug and its traceback goes to the log.
    """
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
    except (MirflowError, Exception) as err:  # noqa: B014 - MirflowError listed for readers
        reason = str(err) if isinstance(err, MirflowError) else f"{type(err).__name__}: {err}"
        if not isinstance(err, MirflowError):
            log.error("unexpected error (a bug; please report it with this log):\n%s", traceback.format_exc())
        log.error("%s track=%r step=%s reason=%s", FAILURE_MARKER, track, step, reason)
        sys.stderr.write(f"\nmirflow: track '{track}', step '{step}' failed: {reason}\n"
                         + (f"  log: {log_path}\n" if log_path else ""))
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


def compute_family(fam: Family, settings: dict, inputs: dict[str, str]) -> tuple[FeatureResult, dict]:
    """Run a signal family on the full mix, or on every stem for a ``stems`` family.

    Stems that were not provided and silent stems get every key of the family
    absent with the reason, so the merged .INFO explains each missing value.
    """
    compute = resolve(fam.compute)
    if fam.scope == "mix":
        signal = load_audio(inputs["audio"])
        return compute(signal, settings), {"audio": audio_facts(signal)}
    catalogue = load_catalogue()
    result, audio = FeatureResult(), {}
    for stem in STEM_NAMES:
        keys = catalogue.stem_keys(fam.name, stem)
        if stem not in inputs:
            for key in keys:
                result.mark_absent(key, "stem not available")
            continue
        signal = load_audio(inputs[stem])
        audio[stem] = audio_facts(signal)
        if signal.is_digital_silence():
            for key in keys:
                result.mark_absent(key, "silent stem")
            continue
        stem_result = compute(signal, settings)
        result.update(stem_result, suffix=f"_{stem}")
        result.meta[stem] = stem_result.meta
    return result, audio


def run_family_job(smk) -> None:
    """Entry point of the generic family rule script (``snakemake`` object in, JSON out)."""
    fam = lookup_family(smk.params.family)
    track = smk.wildcards.track
    with job_logging(smk.log[0] if smk.log else None, track, fam.name) as logger:
        started = time.perf_counter()
        inputs = {name: str(path) for name, path in smk.input.items()}
        settings = dict(smk.params.settings)
        result, audio = compute_family(fam, settings, inputs)
        partial = build_partial(fam, result, settings, inputs, audio, time.perf_counter() - started)
        write_json_atomic(smk.output[0], partial)
        logger.info("wrote %s: %d values, %d absent", smk.output[0], len(result.values), len(result.absent))
