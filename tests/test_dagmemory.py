"""mirflow.dagmemory: Snakemake's DAG steps replaced by equivalents holding fewer objects at once."""
from __future__ import annotations

import asyncio
import itertools
import random
import subprocess
import sys
import textwrap
from pathlib import Path

from mirflow.dagmemory import apply, nested_output


def _snakemakes_own_check(outputs):
    """Snakemake 9.27.1's DAG.check_directory_outputs, as a function of (path, job) pairs."""
    import os

    ordered = sorted({(Path(f).absolute(), job) for f, job in outputs})
    for i in range(len(ordered) - 1):
        (a, job_a), (b, job_b) = ordered[i: i + 2]
        common = os.path.commonpath([a, b])
        if a != b and common == os.path.commonpath([a]) and job_a != job_b:
            return (str(a), job_a), (str(b), job_b)
    return None


def test_nested_output_finds_what_snakemakes_check_finds_on_random_trees():
    rng = random.Random(7)
    parts = ["a", "a-b", "a.b", "b", "ab", "a b", "crops", "x"]
    for _ in range(300):
        paths = {"/r/" + "/".join(rng.choice(parts) for _ in range(rng.randint(1, 4))) for _ in range(12)}
        outputs = [(p, rng.randint(1, 4)) for p in sorted(paths)]
        assert nested_output(outputs) == _snakemakes_own_check(outputs), outputs


def test_a_folder_comes_right_before_its_contents_not_after_a_sibling_with_a_longer_name():
    # As strings, "/r/a-b" sorts between "/r/a" and "/r/a/c"; as paths (and here) "/r/a" is followed by "/r/a/c".
    outputs = [("/r/a", 1), ("/r/a-b", 2), ("/r/a/c", 3)]
    assert nested_output(outputs) == (("/r/a", 1), ("/r/a/c", 3))
    assert nested_output([("/r/a", 1), ("/r/a/c", 1), ("/r/a-b", 2)]) is None  # the same job's own folder


def test_snakemake_still_rejects_an_output_inside_another_jobs_folder(tmp_path):
    (tmp_path / "Snakefile").write_text(textwrap.dedent("""
        import mirflow.dagmemory
        mirflow.dagmemory.apply()

        rule all:
            input: "out/crops", "out/crops/extra.txt"

        rule folder:
            output: directory("out/crops")
            shell: "mkdir -p {output}"

        rule inside:
            output: "out/crops/extra.txt"
            shell: "touch {output}"
    """))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "File/directory is a child to another output" in proc.stdout + proc.stderr


class _File(str):
    """An output as Job.output_mintime sees it: exists(), mtime(), is_storage."""

    is_storage = False

    def __new__(cls, name, mtime):
        obj = super().__new__(cls, name)
        obj._mtime = mtime
        return obj

    async def exists(self):
        return self._mtime is not None

    async def mtime(self):
        class Mtime:
            def local_or_storage(_self):
                return self._mtime
        return Mtime()


class _Job:
    def __init__(self, output, benchmark=None):
        self.output, self.benchmark = output, benchmark


def test_the_oldest_output_is_the_same_looked_up_in_turn():
    apply()
    from snakemake.jobs import Job

    mintime = Job.output_mintime.fget
    assert getattr(mintime, "mirflow_wrapped", False)
    for times in itertools.product([None, 5.0, 3.0, 9.0], repeat=3):
        job = _Job([_File(f"o{i}", t) for i, t in enumerate(times)])
        present = [t for t in times if t is not None]
        assert asyncio.run(mintime(job)) == (min(present) if present else None)
    assert asyncio.run(mintime(_Job([_File("o", 5.0)], benchmark=_File("b", 2.0)))) == 2.0
    assert asyncio.run(mintime(_Job([_File("o", None)], benchmark=_File("b", 2.0)))) == 2.0
    assert apply() is None and Job.output_mintime.fget is mintime  # installed once
