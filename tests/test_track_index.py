"""The track index: same tracks as a full scan, refreshed incrementally, trusted without a scan, rebuilt when bad."""
import json
import os
import time

import numpy as np
import soundfile as sf

from mirflow.track_index import RACY_NS, load_track_index, read_audio_header, trust_requested
from mirflow.tracks import discover_tracks


def _wav(path, seconds=0.1, sr=8000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(sr * seconds), dtype=np.float32), sr)
    return path


def _age(root, seconds=10):
    """Move every file and folder's time into the past, so that none is 'racy' (modified during a scan)."""
    past = time.time() - seconds
    for p in [root, *root.rglob("*")]:
        os.utime(p, (past, past))


def _corpus(tmp_path):
    root = tmp_path / "music"
    for i in range(3):
        for j in range(4):
            _wav(root / f"album{i}" / f"song{j}.wav")
    for name in ("full_mix", "drums", "bass"):
        _wav(root / "Band" / f"{name}.flac")
    _wav(root / "deep" / "er" / "x.wav", seconds=0.5)
    _age(root)
    return root


def _load(root, tmp_path, **kw):
    return load_track_index(root, tmp_path / "results" / ".mirflow_track_index.json",
                            exclude_dirs=(str(tmp_path / "results"),), **kw)


def _counting_reader():
    calls = []

    def read(path):
        calls.append(path)
        return read_audio_header(path)
    return read, calls


def test_first_load_equals_a_full_scan_and_reads_every_header_once(tmp_path):
    root = _corpus(tmp_path)
    index = _load(root, tmp_path)
    assert index.tracks == discover_tracks(root)
    assert len(index.tracks) == 14 and index.stats.rebuilt == "no index yet"
    assert len(index.stats.headers_read) == 16  # 12 songs, the mix and 2 stems, x.wav
    assert index.headers[str(root.resolve() / "deep" / "er" / "x.wav")] == {
        "sample_rate": 8000, "channels": 1, "frames": 4000, "duration_s": 0.5}
    again = _load(root, tmp_path)
    assert again.tracks == index.tracks and again.headers == index.headers
    assert again.stats.listed == [] and again.stats.headers_read == [] and again.stats.rebuilt == ""


def test_refresh_lists_only_changed_folders_and_reads_only_new_or_edited_files(tmp_path):
    root = _corpus(tmp_path)
    _load(root, tmp_path)
    _wav(root / "album1" / "song9.wav")                               # added
    os.rename(root / "album2" / "song0.wav", root / "deep" / "moved.wav")  # moved to another folder
    (root / "album0" / "song3.wav").unlink()                          # removed
    _wav(root / "Band" / "drums.flac", seconds=0.25)                  # edited in place (same folder entries)
    read, calls = _counting_reader()
    index = _load(root, tmp_path, read_header=read)
    assert sorted(index.stats.listed) == ["album0", "album1", "album2", "deep"]
    assert sorted(os.path.relpath(p, root.resolve()) for p in calls) == [
        "Band/drums.flac", "album1/song9.wav", "deep/moved.wav"]
    assert index.tracks == discover_tracks(root)
    ids = {t.id for t in index.tracks}
    assert {"album1/song9", "deep/moved"} <= ids and not {"album0/song3", "album2/song0"} & ids
    assert index.headers[str(root.resolve() / "Band" / "drums.flac")]["frames"] == 2000


def test_new_and_removed_folders(tmp_path):
    root = _corpus(tmp_path)
    _load(root, tmp_path)
    _wav(root / "new" / "sub" / "a.wav")
    for p in sorted((root / "deep").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (root / "deep").rmdir()
    read, calls = _counting_reader()
    index = _load(root, tmp_path, read_header=read)
    assert sorted(index.stats.listed) == [".", "new", "new/sub"]
    assert [os.path.relpath(p, root.resolve()) for p in calls] == ["new/sub/a.wav"]
    assert index.tracks == discover_tracks(root)
    assert "new/sub/a" in {t.id for t in index.tracks} and "deep/er/x" not in {t.id for t in index.tracks}


def test_trusted_load_does_not_touch_the_input(tmp_path):
    root = _corpus(tmp_path)
    first = _load(root, tmp_path)
    _wav(root / "album0" / "unseen.wav")
    read, calls = _counting_reader()
    trusted = _load(root, tmp_path, trust=True, read_header=read)
    assert trusted.stats.trusted and trusted.tracks == first.tracks and calls == []
    os.rename(root, tmp_path / "elsewhere")   # the input folder may even be unreachable
    assert _load(root, tmp_path, trust=True).tracks == first.tracks
    assert trust_requested(is_main_process=False)


def test_trust_from_the_environment(monkeypatch):
    monkeypatch.delenv("MIRFLOW_TRUST_TRACK_INDEX", raising=False)
    assert not trust_requested(is_main_process=True)
    monkeypatch.setenv("MIRFLOW_TRUST_TRACK_INDEX", "1")
    assert trust_requested(is_main_process=True)


def test_corrupt_or_foreign_index_is_ignored_and_rebuilt(tmp_path):
    root = _corpus(tmp_path)
    path = tmp_path / "results" / ".mirflow_track_index.json"
    expected = _load(root, tmp_path).tracks
    good = json.loads(path.read_text())
    for bad, reason in ((path.read_text()[:100], "unreadable index"),
                        (json.dumps({**good, "version": 0}), "another format or version"),
                        (json.dumps({**good, "input_dir": "/elsewhere"}), "another input dir"),
                        (json.dumps({**good, "dirs": {".": {"mtime_ns": "x"}}}), "malformed index")):
        path.write_text(bad)
        for trust in (False, True):  # a bad index is never trusted
            path.write_text(bad)
            index = _load(root, tmp_path, trust=trust)
            assert reason in index.stats.rebuilt and not index.stats.trusted
            assert index.tracks == expected and len(index.stats.headers_read) == 16
    assert json.loads(path.read_text())["dirs"] == good["dirs"]


def test_changes_in_the_same_clock_tick_as_the_scan_are_rechecked(tmp_path):
    root = tmp_path / "music"
    _wav(root / "a" / "fresh.wav")            # modified just now: within RACY_NS of the scan
    _load(root, tmp_path)
    read, calls = _counting_reader()
    index = _load(root, tmp_path, read_header=read)
    assert "a" in index.stats.listed and len(calls) == 1
    assert RACY_NS == 2_000_000_000


def test_headers_of_bad_and_unsupported_files_are_reasons(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.flac"
    junk.write_bytes(b"fLaC" + b"\0" * 100)
    m4a = tmp_path / "x.m4a"
    m4a.write_bytes(b"\0" * 100)
    assert read_audio_header(str(empty)) == {"unread": "empty file (0 bytes)"}
    assert read_audio_header(str(junk))["unread"].startswith("unreadable header")
    assert "M4A" in read_audio_header(str(m4a))["unread"]
    root = tmp_path / "music"
    _wav(root / "ok.wav", seconds=1.0)
    os.link(junk, root / "junk.flac")
    index = _load(root, tmp_path)
    summary = index.audio_summary()
    assert "1 file(s) with a bad header" in summary and "junk.flac: unreadable header" in summary
    assert summary.startswith("0.0 h of audio in 1 full-mix headers")


def test_unwritable_index_location_still_gives_the_tracks(tmp_path):
    root = _corpus(tmp_path)
    (tmp_path / "results").write_text("a file where the results folder should be")
    index = _load(root, tmp_path)
    assert index.tracks == discover_tracks(root) and "not saved" in index.stats.rebuilt


def test_an_unreadable_folder_is_reported_and_listed_again_once_readable(tmp_path, monkeypatch):
    """Its tracks are left out and named in the start-up line; fixing the permissions does not change the
    folder's time, so the index must not keep it as an empty folder."""
    root = _corpus(tmp_path)
    _load(root, tmp_path)
    locked = str(root.resolve() / "album1")
    scandir = os.scandir

    def denying(path="."):
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    os.utime(root / "album1", None)  # so the folder is listed again (as after a change)
    monkeypatch.setattr(os, "scandir", denying)
    index = _load(root, tmp_path)
    assert not [t for t in index.tracks if t.id.startswith("album1/")]
    assert len(index.tracks) == 10
    assert index.stats.unreadable == [f"{locked} (Permission denied)"]
    assert "1 input path(s) could not be read" in index.stats.describe() and locked in index.stats.describe()
    monkeypatch.setattr(os, "scandir", scandir)  # the user fixes the permissions; the folder's time is unchanged
    again = _load(root, tmp_path)
    assert again.stats.unreadable == [] and "album1" in again.stats.listed
    assert again.tracks == discover_tracks(root) and len(again.tracks) == 14


def test_a_link_to_a_missing_audio_file_is_reported(tmp_path):
    root = _corpus(tmp_path)
    (root / "album0" / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    index = _load(root, tmp_path)
    assert len(index.tracks) == 14
    assert [u.rsplit(" (", 1)[0] for u in index.stats.unreadable] == [str(root.resolve() / "album0" / "gone.wav")]
