"""Test-only job entry points for the warm-worker tests: they crash, hang or succeed on request.

Imported by the worker processes the tests start (tests/ is on their PYTHONPATH), never by the workflow.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from mirflow.runner import job_logging


def job(smk) -> None:
    """Behave as ``smk.params.behaviour`` says: ok (write the output), abort, sigkill, segfault, sleep, fail."""
    behaviour = smk.params.behaviour
    with job_logging(smk.log[0], smk.wildcards.track, "crashy") as logger:
        logger.info("behaviour %s in pid %d", behaviour, os.getpid())
        if behaviour == "abort":
            os.abort()
        if behaviour == "sigkill":  # what the kernel's out-of-memory killer does
            os.kill(os.getpid(), signal.SIGKILL)
        if behaviour == "segfault":
            import ctypes

            ctypes.string_at(0)
        if behaviour == "sleep":
            time.sleep(120)
        if behaviour == "fail":
            raise ValueError("a bad value")
        Path(smk.output[0]).write_text(f"{os.getpid()} {os.getppid()}\n")
