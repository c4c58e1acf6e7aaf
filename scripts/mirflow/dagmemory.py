"""Two steps of Snakemake's DAG construction without their peak memory at corpus scale (same results).

Both replace a method of Snakemake 9 (9.27.1 measured) with one that computes the same thing with fewer live
objects; :func:`apply` installs both (the Snakefile calls it when parsed). Measured at 10,000 tracks
(``snakemake -n``, 30,007 jobs, RSS sampled every 50 ms; docs/measured.md): peak 1.03 GiB without them,
0.92 GiB with the first, 0.88 GiB with both (the peak then is Snakemake printing the dry run's jobs).

**The oldest output of each job.** ``DAG.update_needrun`` starts one asyncio task per job, all at once, to find
the oldest output of the job (``Job.output_mintime``), and each of those starts one task per output file in a
task group of its own. For local files nothing in a task ever waits, but the outer tasks wait on their task
groups, so all of them (30,000 jobs, 200,000 tasks with their coroutines and frames) are alive at the same time:
the dry run's peak, 1.03 GiB against 0.86 GiB before and after. :func:`sequential_output_mintime` looks the
outputs of a job up one after the other when none is in a storage plugin (where Snakemake's concurrent look-ups
save round trips), so each job's task finishes before the next starts.

**Outputs nested in another job's output.** Snakemake 9 ends the DAG's construction with
``DAG.check_directory_outputs``: it sorts a set of ``(pathlib.Path(f).absolute(), job)`` pairs, one per output
of every job, and compares neighbours. A ``Path`` keeps its parts as a list of strings, so at 10,000 tracks
(140,000 outputs) that set adds 74 MiB at its peak, the strings 20 MiB.
:func:`lean_directory_output_check` replaces the method with the same check over plain strings: the same pairs
compared, in the same order, and the same ``ChildIOException`` raised.

The order: ``Path`` objects sort part by part, so a folder comes right before what it contains
(``a/b``, ``a/b/c``, ``a/b-c``). Strings sort the same way once the separator is the smallest character, so
:func:`nested_output` sorts on the path with ``/`` replaced by ``NUL``, which no path contains.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def nested_output(outputs: Iterable[tuple[str, Any]]) -> tuple[tuple[str, Any], tuple[str, Any]] | None:
    """The first pair of neighbours, in Snakemake's order, where the second output lies inside the first and
    the two belong to different jobs; None when there is none.

    Parameters
    ----------
    outputs : iterable of (str, job)
        Each output of each job as an absolute path (``str(Path(f).absolute())``) and its job.

    Returns
    -------
    ((str, job), (str, job)) or None
        The containing output and the contained one.
    """
    keyed = sorted({(path.replace(os.sep, "\0"), job) for path, job in outputs})
    for (parent, parent_job), (child, child_job) in zip(keyed, keyed[1:]):
        if child.startswith(parent + "\0") and parent_job != child_job:
            return (parent.replace("\0", os.sep), parent_job), (child.replace("\0", os.sep), child_job)
    return None


def apply() -> None:
    """Install both replacements (idempotent)."""
    sequential_output_mintime()
    lean_directory_output_check()


def sequential_output_mintime() -> bool:
    """Replace the property ``snakemake.jobs.Job.output_mintime`` with one awaiting its look-ups in turn.

    The value is the same: the oldest modification time among the job's outputs and its benchmark file, None
    when none exists. A job with an output in a storage plugin keeps Snakemake's concurrent look-ups. Returns
    True when it replaced the property, False when it had already.
    """
    import snakemake.api  # noqa: F401 - Snakemake's modules import each other in this order only
    from snakemake.jobs import Job

    original = Job.output_mintime
    if getattr(original.fget, "mirflow_wrapped", False):
        return False

    async def output_mintime(self):
        """Return oldest output file."""
        if any(f.is_storage for f in self.output):
            return await original.fget(self)
        mintime = None
        for f in self.output:
            if await f.exists():
                local = (await f.mtime()).local_or_storage()
                mintime = local if mintime is None else min(mintime, local)
        if self.benchmark and await self.benchmark.exists():
            benchmark = (await self.benchmark.mtime()).local_or_storage()
            return benchmark if mintime is None else min(mintime, benchmark)
        return mintime

    output_mintime.mirflow_wrapped = True  # type: ignore[attr-defined]  # marker read back above
    Job.output_mintime = property(output_mintime)
    return True


def lean_directory_output_check() -> bool:
    """Replace ``snakemake.dag.DAG.check_directory_outputs`` with :func:`nested_output`'s version.

    Returns True when it replaced the method, False when it had already (the Snakefile is parsed more than once
    in some Snakemake modes).
    """
    import snakemake.api  # noqa: F401 - Snakemake's modules import each other in this order only
    from snakemake.dag import DAG
    from snakemake.exceptions import ChildIOException

    if getattr(DAG.check_directory_outputs, "mirflow_wrapped", False):
        return False

    def check_directory_outputs(self) -> None:
        """Check that no output file is contained in a directory output of the same or another rule."""
        found = nested_output((str(Path(f).absolute()), job) for job in self.jobs for f in job.output)
        if found:
            (parent, parent_job), (child, child_job) = found
            raise ChildIOException(parent=(Path(parent), parent_job), child=(Path(child), child_job))

    check_directory_outputs.mirflow_wrapped = True  # type: ignore[attr-defined]  # marker read back above
    DAG.check_directory_outputs = check_directory_outputs
    return True
