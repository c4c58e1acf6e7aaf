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

import json
import os
import time
from typing import Any

from .audio import load_audio
from .errors import InputAudioError, MirflowError
from .registry import STEP_VERSIONS

#: Version of the probe record (``logs/probe.json``).
PROBE_VERSION = STEP_VERSIONS["probe_audio"]


def probe_inputs(paths: dict[str, str], timeout_s: float = 600.0) -> dict[str, Any]:
    """Decode every input, in one child process (forked), and return its facts.

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
    import signal as signals

    names, files = list(paths), [str(p) for p in paths.values()]
    status, lines = _decode_in_fork(files, timeout_s) if hasattr(os, "fork") else _decode_in_python(files, timeout_s)
    facts = [json.loads(line) for line in lines if line.startswith("{")]
    if status == 0 and len(facts) == len(files):
        return dict(zip(names, facts))
    failed = files[len(facts)] if len(facts) < len(files) else files[-1]
    if status is None:
        raise InputAudioError(failed, f"decoding took longer than {timeout_s:.0f} s")
    if status < 0:
        raise InputAudioError(failed, f"the audio decoder crashed ({signals.Signals(-status).name}) while reading it")
    reasons = [line[len(_ERROR):] for line in lines if line.startswith(_ERROR)]
    raise InputAudioError(failed, reasons[-1] if reasons else f"the decoding process failed (exit {status})")


#: Prefix of the line a decoding child writes for a file it cannot decode.
_ERROR = "ERROR "


def _decode_all(files: list[str], write) -> int:
    """Decode each file, writing one JSON line of facts per file, or the reason for the first one that fails."""
    for path in files:
        try:
            write(json.dumps(_facts(path)) + "\n")
        except InputAudioError as err:
            write(_ERROR + " ".join(str(err.reason).split()) + "\n")
            return 1
        except Exception as err:  # any decoder error is this file's failure, said in one line
            write(_ERROR + " ".join(f"{type(err).__name__}: {err}".split()) + "\n")
            return 1
    return 0


def _decode_in_fork(files: list[str], timeout_s: float) -> tuple[int | None, list[str]]:
    """Decode in a forked child: isolated (a decoder that crashes kills the child only), and cheap in a warm
    worker, whose libraries the child shares (a fresh interpreter cost 0.3 s per track).

    Returns (status, lines): the child's exit status (negative: killed by that signal; None: timed out) and
    the lines it wrote.
    """
    import select
    import signal as signals

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        code = 2
        try:
            os.close(read_fd)
            code = _decode_all(files, lambda text: os.write(write_fd, text.encode()))
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks, deadline, timed_out = [], time.monotonic() + timeout_s, False
    with os.fdopen(read_fd, "rb") as pipe:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                timed_out = True
                os.kill(pid, signals.SIGKILL)
                break
            chunk = os.read(pipe.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
    _, wait_status = os.waitpid(pid, 0)
    lines = b"".join(chunks).decode(errors="replace").splitlines()
    return (None if timed_out else os.waitstatus_to_exitcode(wait_status)), lines


def _decode_in_python(files: list[str], timeout_s: float) -> tuple[int | None, list[str]]:
    """Where there is no fork: decode in a fresh interpreter (``python -m mirflow.probe``)."""
    import subprocess
    import sys

    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # finds this mirflow
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH"))))}
    try:
        proc = subprocess.run([sys.executable, "-m", "mirflow.probe", *files], capture_output=True, text=True,
                              timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return None, []
    return proc.returncode, proc.stdout.splitlines()


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


if __name__ == "__main__":  # the child of probe_inputs without fork: one line per file (see _decode_all)
    import sys

    sys.exit(_decode_all(sys.argv[1:], lambda text: print(text, end="", flush=True)))
