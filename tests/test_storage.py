"""A full disk or a read-only results folder: one clear error naming the folder, and no partial file left."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from mirflow.jsonio import OutputWriteError, check_writable_folder, write_json_atomic

BIG = {"values": list(range(40000))}  # ~300 kB of JSON


@contextlib.contextmanager
def tmpfs(folder: Path, options: str):
    """A small tmpfs at ``folder`` (root only), else skip."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.decode().strip() or 'not root'}); "
                    "the simulated cases below cover the same code")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_full_disk_keeps_the_previous_file_and_leaves_no_partial_one(tmp_path):
    with tmpfs(tmp_path / "small", "size=64k") as folder:
        target = folder / "features" / "x.json"
        write_json_atomic(target, {"old": 1})
        with pytest.raises(OutputWriteError) as info:
            write_json_atomic(target, BIG)
        assert str(folder / "features") in str(info.value) and "No space left on device" in str(info.value)
        assert json.loads(target.read_text()) == {"old": 1}
        assert sorted(p.name for p in (folder / "features").iterdir()) == ["x.json"]


def test_simulated_enospc_in_the_atomic_writer(tmp_path, monkeypatch):
    def full(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputWriteError) as info:
        write_json_atomic(tmp_path / "out" / "x.json", BIG)
    assert info.value.folder == str(tmp_path / "out")
    assert "No space left on device" in info.value.message and info.value.fix
    assert list((tmp_path / "out").iterdir()) == []


def _dry_run_into(tmp_path: Path, results: Path) -> str:
    workdir = tmp_path / "wd"
    (workdir / "music").mkdir(parents=True)
    (workdir / "music" / "a.wav").write_bytes(b"RIFF")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"), "-n",
                           "--cores", "1", "--configfile", str(REPO / "config" / "config.yaml"), "--config",
                           "input_dir=music", f"results_dir={results}"], cwd=workdir,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO / "scripts")})
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_read_only_folder_is_refused_before_anything_runs(tmp_path):
    with tmpfs(tmp_path / "ro", "size=64k,ro") as folder:
        with pytest.raises(OutputWriteError, match="Read-only file system"):
            check_writable_folder(folder / "results")
        out = _dry_run_into(tmp_path, folder / "results")
        assert f"mirflow: results_dir: cannot write to the folder '{folder}/results': Read-only file system" in out


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a chmod 555 folder; the tmpfs case covers root")
def test_folder_without_write_permission_is_refused(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        out = _dry_run_into(tmp_path, folder / "results")
        assert f"mirflow: results_dir: cannot write to the folder '{folder}/results': Permission denied" in out
    finally:
        folder.chmod(0o755)


def test_simulated_read_only_folder(tmp_path, monkeypatch):
    import tempfile

    def refuse(*_a, **_k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with pytest.raises(OutputWriteError, match=f"cannot write to the folder '{tmp_path}/r'"):
        check_writable_folder(tmp_path / "r")


def test_writable_check_creates_nothing(tmp_path):
    check_writable_folder(tmp_path / "not" / "yet")
    assert list(tmp_path.iterdir()) == []


def test_full_disk_under_a_library_writer_is_named_too(tmp_path):
    """libsndfile reports a full disk as "System error." without an errno; the folder is asked instead."""
    import numpy as np

    from mirflow.crop_job import write_audio

    with tmpfs(tmp_path / "small", "size=64k") as folder:
        noise = np.random.default_rng(0).standard_normal((2, 200000)).astype(np.float32) * 0.1
        with pytest.raises(OutputWriteError, match=f"cannot write to the folder '{folder}': No space left"):
            write_audio(str(folder / "crop.flac"), noise, 44100)
        assert list(folder.iterdir()) == []


def test_a_writer_bug_on_a_healthy_disk_is_not_blamed_on_the_disk(tmp_path):
    from mirflow.jsonio import atomic_path

    with pytest.raises(RuntimeError, match="encoder bug"):
        with atomic_path(tmp_path / "x.flac"):
            raise RuntimeError("encoder bug")
    assert list(tmp_path.iterdir()) == []
