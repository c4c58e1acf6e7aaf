"""Track discovery: both layouts, awkward names, collisions, exclusions; inputs are never touched."""
import os

import numpy as np
import pytest
import soundfile as sf

from mirflow.errors import ConfigError
from mirflow.tracks import discover_tracks


def _wav(path, seconds=0.1):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(8000 * seconds), dtype=np.float32), 8000)
    return path


def test_layouts_names_and_stems(tmp_path):
    root = tmp_path / "music"
    _wav(root / "Café, \"Quoted\" & 'single'" / "full_mix.wav")
    for stem in ("drums", "bass", "other", "vocals"):
        _wav(root / "Café, \"Quoted\" & 'single'" / f"{stem}.wav")
    _wav(root / "Album A" / "01 Song.wav")
    _wav(root / "Album B" / "01 Song.wav")            # same basename, different folder
    _wav(root / "loose top.wav")
    (root / "notes.txt").write_text("not audio")
    _wav(root / ".hidden" / "x.wav")
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    tracks = {t.id: t for t in discover_tracks(root)}
    assert set(tracks) == {"Café, \"Quoted\" & 'single'", "Album A/01 Song", "Album B/01 Song", "loose top"}
    quoted = tracks["Café, \"Quoted\" & 'single'"]
    assert sorted(quoted.stems) == ["bass", "drums", "other", "vocals"]
    assert quoted.audio.endswith("full_mix.wav") and quoted.name == "Café, \"Quoted\" & 'single'"
    assert tracks["Album A/01 Song"].name == "01 Song" and not tracks["Album A/01 Song"].stems
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


def test_same_id_in_two_formats_keeps_both_with_extension(tmp_path):
    _wav(tmp_path / "a" / "x.wav")
    sf.write(tmp_path / "a" / "x.flac", np.zeros(800, dtype=np.float32), 8000)
    ids = sorted(t.id for t in discover_tracks(tmp_path))
    assert ids == ["a/x.flac", "a/x.wav"]


def test_track_folder_prefers_lossless_full_mix_and_notes_it(tmp_path):
    _wav(tmp_path / "song" / "full_mix.wav")
    sf.write(tmp_path / "song" / "full_mix.ogg", np.zeros(8000, dtype=np.float32), 8000)
    (track,) = discover_tracks(tmp_path)
    assert track.audio.endswith("full_mix.wav") and any("full_mix.ogg" in n for n in track.notes)


def test_results_folder_inside_input_is_not_scanned(tmp_path):
    _wav(tmp_path / "song.wav")
    _wav(tmp_path / "results" / "song" / "stems" / "drums.wav")
    ids = [t.id for t in discover_tracks(tmp_path, exclude_dirs=(str(tmp_path / "results"),))]
    assert ids == ["song"]


def test_missing_input_dir_is_a_config_error_naming_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="input_dir"):
        discover_tracks(tmp_path / "nope")


def test_extensions_are_case_insensitive(tmp_path):
    _wav(tmp_path / "LOUD.WAV")
    os.rename(tmp_path / "LOUD.WAV", tmp_path / "LOUD.Wav")
    assert [t.id for t in discover_tracks(tmp_path)] == ["LOUD"]
