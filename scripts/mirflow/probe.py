"""The probe: decode a track's input files once, before any family does, so a broken file is reported
once per track (step ``probe_audio``, the first thing its ``track_features`` job does) instead of once by every
family that reads it.

Every later job of a track takes the probe's record as input ``probe`` (a plain input: see
``probe_path`` in workflow/rules/common.smk for why not ``ancient``). The probe decodes with the shared loader,
so it fails exactly when the families would;
a header-only check (the ``metadata`` family reads only headers and tags) would pass a file whose audio
data is truncated or corrupt.
"""
from __future__ import annotations

import os
from typing import Any

from .audio import load_audio
from .errors import InputAudioError, MirflowError
from .registry import STEP_VERSIONS

#: Version of the probe record (``logs/probe.json``).
PROBE_VERSION = STEP_VERSIONS["probe_audio"]


def probe_inputs(paths: dict[str, str], timeout_s: float = 600.0) -> dict[str, Any]:
    """Decode every input, in one child process, and return its facts.

    The decoders are C libraries: a damaged file can kill the process that decodes it (found by the fuzz
    tests: a byte-flipped Ogg Vorbis file segfaults libsndfile). In a child, that becomes an
    :class:`InputAudioError` naming the file and the signal, and the track's families never start.

    Parameters
    ----------
    paths : dict
        Input name (``audio`` for the full mix, a stem name for a provided stem) -> file path.
    timeout_s : float
        Seconds the child may take for all inputs together.

    Returns
    -------
    dict
        Input name -> ``{"path", "bytes", "sample_rate" (Hz), "channels", "frames", "duration_s", "decoder"}``.

    Raises
    ------
    InputAudioError
        For the first input that cannot be decoded (missing, empty, corrupt, zero frames, non-finite
        samples, or its decoder crashed).
    """
    import json
    import signal as signals
    import subprocess
    import sys

    names, files = list(paths), [str(p) for p in paths.values()]
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # finds this mirflow
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH"))))}
    proc = subprocess.run([sys.executable, "-m", "mirflow.probe", *files], capture_output=True, text=True,
                          timeout=timeout_s, env=env)
    facts = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode == 0 and len(facts) == len(files):
        return dict(zip(names, facts))
    failed = files[len(facts)] if len(facts) < len(files) else files[-1]
    if proc.returncode < 0:
        name = signals.Signals(-proc.returncode).name
        raise InputAudioError(failed, f"the audio decoder crashed ({name}) while reading it")
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    raise InputAudioError(failed, lines[-1] if lines else f"the decoding process failed (exit {proc.returncode})")


def probe_file(path: str) -> dict[str, Any]:
    """The facts of one file, decoded in a child process (see :func:`probe_inputs`)."""
    return probe_inputs({"audio": path})["audio"]


def _facts(path: str) -> dict[str, Any]:
    signal = load_audio(path)
    return {"path": path, "bytes": os.path.getsize(path), "sample_rate": signal.sample_rate,
            "channels": signal.channels, "frames": signal.frames, "duration_s": round(signal.duration_s, 6),
            "decoder": signal.decoder}


def probe_record_current(record: str, paths: dict[str, str]) -> bool:
    """Whether the probe record at ``record`` still describes these inputs: same version, same files and sizes,
    and written after the last change of every input (Snakemake touches a job's outputs when it ends)."""
    import json

    try:
        with open(record, encoding="utf-8") as handle:
            data = json.load(handle)
        written = os.path.getmtime(record)
        facts = data["inputs"]
        return data.get("version") == PROBE_VERSION and set(facts) == set(paths) and all(
            facts[name]["path"] == path and facts[name]["bytes"] == os.path.getsize(path)
            and os.path.getmtime(path) <= written for name, path in paths.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


class UnusableTrackError(MirflowError):
    """A track the workflow cannot carry (its name), set aside at parse time (see :mod:`mirflow.names`)."""


def unusable_job(smk) -> None:
    """Entry point of rule ``unusable_track``: fail with the reason the track was set aside."""
    from .runner import job_logging

    with job_logging(smk.log[0] if smk.log else None, smk.params.track, "unusable_track"):
        raise UnusableTrackError(f"input '{smk.params.audio}' cannot be processed: {smk.params.reason}.",
                                 "rename the file or folder as said, then run again (the other tracks are "
                                 "not affected).")


if __name__ == "__main__":  # the child of probe_inputs: one JSON line per file, or the reason on stderr
    import json
    import sys

    for _path in sys.argv[1:]:
        try:
            print(json.dumps(_facts(_path)), flush=True)
        except InputAudioError as err:
            print(err.reason, file=sys.stderr)
            sys.exit(1)
