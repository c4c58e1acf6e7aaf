"""The workflow's front door, through `snakemake -n`: nested --config overrides, bad keys, an empty folder."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow
SNAKEFILE = REPO / "workflow" / "Snakefile"


def _dry_run(workdir: Path, *config: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-n", "--cores", "1",
                           "--configfile", str(REPO / "config" / "config.yaml"), "--config", "input_dir=music",
                           "results_dir=results", *config], cwd=workdir, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO / "scripts")})


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "music").mkdir()
    (tmp_path / "music" / "a.wav").write_bytes(b"RIFF")  # a dry run never reads it
    return tmp_path


def test_nested_override_changes_only_the_named_key(workdir):
    proc = _dry_run(workdir, "families={loudness: false, timbral: false}", "crops={length_samples: 524288}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "disabled in the config (families: loudness: false)" in out
    table = out.split("Job stats:", 1)[1]
    assert "\ntrack_features " in table and "\ncrops " in table  # the other families and crops still run
    # The mix families share the track_features job: its outputs name the families that run.
    assert "/features/loudness.json" not in out and "/features/timbral.json" not in out
    assert "/features/spectral.json" in out


def test_unknown_key_is_one_line_not_the_schema(workdir):
    proc = _dry_run(workdir, "families={loudnes: false}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "mirflow: unknown config key 'loudnes' (did you mean 'loudness'?) in 'families'" in out
    assert "Failed validating" not in out and "additionalProperties" not in out


def test_wrong_type_says_how_to_write_nested_values(workdir):
    proc = _dry_run(workdir, "crops=524288")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "mirflow: config key 'crops': 524288 is not of type 'object'" in out
    assert 'crops="{length_samples: 524288}"' in out


def test_input_folder_without_audio_exits_non_zero_with_a_clear_message(workdir):
    (workdir / "music" / "a.wav").unlink()
    (workdir / "music" / "notes.txt").write_text("not audio")
    proc = _dry_run(workdir)
    assert proc.returncode != 0
    assert "mirflow: no audio files (wav, flac, mp3, ogg, opus, m4a, aiff, aif) under input_dir 'music'" in \
        proc.stdout + proc.stderr
