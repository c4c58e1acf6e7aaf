"""The track index: discovery done once, then refreshed incrementally.

Listing 100,000 files and reading their headers on every parse of the Snakefile would cost minutes, and a
cluster job re-parses the Snakefile too. The index (``<results>/.mirflow_track_index.json``) records, per
folder under ``input_dir``: the folder's modification time, its sub-folders and its audio files with size,
modification time and header facts. A refresh

* stats every known folder and re-lists only those whose modification time changed (a file or folder added,
  removed or renamed in it; new folders are listed in full, vanished ones dropped with everything below);
* stats every known file of the other folders and re-reads the header only of a file whose size or
  modification time changed (edited in place);
* treats as changed whatever was modified within ``RACY_NS`` before the last scan started (a change in the
  same clock tick as the scan would otherwise go unseen: git's "racy" rule).

In trusted mode (cluster jobs, or ``MIRFLOW_TRUST_TRACK_INDEX=1``) the input folder is not touched at all.
An index that is missing, unreadable, of another version or made for another input folder, exclusion set or
extension list is ignored and rebuilt. Tracks are built from the folders by the same code as
:func:`mirflow.tracks.discover_tracks`, so both give the same tracks.
"""
from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .audio import AUDIO_EXTENSIONS
from .errors import ConfigError
from .jsonio import write_text_atomic
from .tracks import Track, _is_audio, assemble_tracks, folder_candidates

INDEX_NAME = ".mirflow_track_index.json"
INDEX_FORMAT = "mirflow-track-index"
INDEX_VERSION = 1
#: Changes this close before a scan's start may share its clock tick: re-check them next time (2 s, in ns).
RACY_NS = 2_000_000_000
#: Environment variable that makes a parse trust the index without touching the input folder.
TRUST_ENV = "MIRFLOW_TRUST_TRACK_INDEX"


def read_audio_header(path: str) -> dict:
    """Header facts of one audio file, without decoding it.

    Returns
    -------
    dict
        ``sample_rate`` (Hz), ``channels``, ``frames`` and ``duration_s`` (seconds) for files libsndfile opens;
        otherwise ``{"unread": reason}`` (empty file, a format only FFmpeg reads such as M4A, an unreadable
        header). Never raises: a bad file fails its own jobs later, with the decoder's message.
    """
    try:
        if os.path.getsize(path) == 0:
            return {"unread": "empty file (0 bytes)"}
    except OSError as err:
        return {"unread": f"cannot stat: {err.strerror}"}
    if path.rsplit(".", 1)[-1].lower() in ("m4a",):
        return {"unread": "no header reader for M4A (decoded by FFmpeg when its jobs run)"}
    try:
        import soundfile

        info = soundfile.info(path)
    except Exception as err:  # libsndfile raises RuntimeError/LibsndfileError/TypeError for bad files
        return {"unread": f"unreadable header: {str(err).strip() or type(err).__name__}"}
    if info.samplerate <= 0 or info.frames < 0:
        return {"unread": f"invalid header (sample rate {info.samplerate}, frames {info.frames})"}
    return {"sample_rate": int(info.samplerate), "channels": int(info.channels), "frames": int(info.frames),
            "duration_s": round(info.frames / info.samplerate, 6)}


@dataclass
class IndexStats:
    """What one load of the index did (the tests count listings and header reads)."""

    folders: int = 0
    files: int = 0
    listed: list[str] = field(default_factory=list)
    headers_read: list[str] = field(default_factory=list)
    #: Folders and entries that could not be read (permissions, broken links, I/O errors), each with the error.
    unreadable: list[str] = field(default_factory=list)
    trusted: bool = False
    rebuilt: str = ""

    def describe(self) -> str:
        if self.trusted:
            return f"track index trusted ({self.folders} folders, {self.files} audio files; input not scanned)"
        how = f"rebuilt ({self.rebuilt})" if self.rebuilt else "refreshed"
        text = (f"track index {how}: {self.folders} folders, {self.files} audio files; "
                f"{len(self.listed)} folder(s) listed, {len(self.headers_read)} header(s) read")
        if self.unreadable:
            shown = "; ".join(self.unreadable[:5]) + (f"; and {len(self.unreadable) - 5} more"
                                                      if len(self.unreadable) > 5 else "")
            text += (f"\nmirflow: {len(self.unreadable)} input path(s) could not be read, their tracks are left out"
                     f" (fix the permissions or the link; the next run lists them again): {shown}")
        return text


@dataclass
class TrackIndex:
    """Tracks found under ``input_dir``, with each audio file's header facts (path -> dict)."""

    tracks: list[Track]
    headers: dict[str, dict]
    stats: IndexStats

    def audio_summary(self) -> str:
        """Total duration of the full mixes whose header was read, and files whose header is unreadable."""
        mixes = [self.headers.get(t.audio, {}) for t in self.tracks]
        hours = sum(h.get("duration_s", 0.0) for h in mixes) / 3600
        bad = sorted((p, h["unread"]) for p, h in self.headers.items()
                     if h.get("unread", "").startswith(("unreadable", "empty", "invalid", "cannot")))
        text = f"{hours:.1f} h of audio in {sum('duration_s' in h for h in mixes)} full-mix headers"
        if bad:
            text += f"; {len(bad)} file(s) with a bad header (their jobs will fail): " + "; ".join(
                f"{p}: {why}" for p, why in bad[:5]) + (" ..." if len(bad) > 5 else "")
        return text


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns]


def _load(index_path: Path, identity: dict) -> tuple[dict | None, str]:
    """The stored index when it is usable, else (None, why it is not)."""
    try:
        data = json.loads(index_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "no index yet"
    except (OSError, ValueError) as err:
        return None, f"unreadable index: {type(err).__name__}"
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT or data.get("version") != INDEX_VERSION:
        return None, "index of another format or version"
    for key, value in identity.items():
        if data.get(key) != value:
            return None, f"index made for another {key.replace('_', ' ')}"
    dirs = data.get("dirs")
    if not isinstance(dirs, dict) or not isinstance(data.get("scanned_ns"), int) or not all(
            isinstance(d, dict) and isinstance(d.get("mtime_ns"), int) and isinstance(d.get("subdirs"), list)
            and isinstance(d.get("files"), dict) for d in dirs.values()):
        return None, "malformed index"
    return data, ""


def load_track_index(input_dir: str | os.PathLike, index_path: str | os.PathLike, *,
                     exclude_dirs: tuple[str, ...] = (), extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
                     trust: bool = False, write: bool = True,
                     read_header: Callable[[str], dict] = read_audio_header) -> TrackIndex:
    """Tracks under ``input_dir`` through the index at ``index_path`` (refreshed, or trusted, then saved).

    Parameters
    ----------
    input_dir : str or PathLike
        Folder scanned for tracks (see :func:`mirflow.tracks.discover_tracks` for layouts and ids).
    index_path : str or PathLike
        The index file (in the results folder). Written atomically when anything changed and ``write``.
    exclude_dirs : tuple of str
        Folders not to descend into (the results and models folders).
    extensions : tuple of str
        Audio extensions, lower case without dot.
    trust : bool
        Use the stored index as it is, without touching ``input_dir`` (falls back to a scan when the index
        is unusable).
    write : bool
        Save the refreshed index.
    read_header : callable
        ``path -> dict`` of header facts (see :func:`read_audio_header`).

    Returns
    -------
    TrackIndex

    Raises
    ------
    ConfigError
        If ``input_dir`` is not a readable folder, or two inputs map to the same track id.
    """
    root = Path(input_dir).expanduser().resolve()
    index_path = Path(index_path)
    identity = {"input_dir": str(root), "excluded": sorted(str(Path(d).resolve()) for d in exclude_dirs),
                "extensions": sorted(extensions)}
    stored, why = _load(index_path, identity)
    stats = IndexStats()
    save, scanned_ns = False, 0
    if trust and stored is not None:
        dirs = stored["dirs"]
        stats.trusted = True
    else:
        if not root.is_dir():
            raise ConfigError(f"input_dir '{input_dir}' is not a folder.",
                              "set input_dir in config/config.yaml or pass --config input_dir=/path/to/music "
                              "(make run INPUT=/path/to/music).")
        stats.rebuilt = why
        scanned_ns = time.time_ns()
        dirs = _refresh(root, stored["dirs"] if stored else {}, stored["scanned_ns"] if stored else 0,
                        set(identity["excluded"]), tuple(extensions), read_header, stats)
        # Saved when anything was listed or read again (new scan time: settles entries that were racy).
        save = write and (stored is None or bool(stats.listed) or bool(stats.headers_read)
                          or not isinstance(stored.get("tracks"), list))
    headers = {}
    for rel_dir, entry in dirs.items():
        base = str(root) if rel_dir == "." else os.path.join(str(root), rel_dir)
        for name, (_size, _mtime, header) in entry["files"].items():
            headers[os.path.join(base, name)] = header
    stats.folders, stats.files = len(dirs), len(headers)
    # Tracks depend only on the folders' file names: reuse the stored list unless a folder was listed again.
    if stored is not None and not stats.listed and isinstance(stored.get("tracks"), list):
        try:
            tracks = [Track(i, audio, stems, tuple(notes)) for i, audio, stems, notes in stored["tracks"]]
        except (TypeError, ValueError):
            tracks = _assemble(root, dirs)
    else:
        tracks = _assemble(root, dirs)
    if save:
        try:
            index_path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(index_path, json.dumps(
                {"format": INDEX_FORMAT, "version": INDEX_VERSION, **identity, "scanned_ns": scanned_ns,
                 "dirs": dirs, "tracks": [[t.id, t.audio, t.stems, list(t.notes)] for t in tracks]},
                ensure_ascii=False, separators=(",", ":")))
        except OSError as err:  # a read-only results folder: the next parse scans again
            stats.rebuilt = f"{stats.rebuilt}; not saved: {err.strerror or err}".lstrip("; ")
    return TrackIndex(tracks, headers, stats)


def _assemble(root: Path, dirs: dict) -> list[Track]:
    candidates: dict[str, list] = defaultdict(list)
    for rel_dir, entry in dirs.items():
        for track_id, item in folder_candidates(root, rel_dir, list(entry["files"])):
            candidates[track_id].append(item)
    return assemble_tracks(candidates)


def _refresh(root: Path, old_dirs: dict, old_scanned_ns: int, excluded: set[str], extensions: tuple[str, ...],
             read_header: Callable[[str], dict], stats: IndexStats) -> dict:
    """Folder entries for the current tree, re-listing and re-reading only what changed since ``old_dirs``."""
    racy_after = old_scanned_ns - RACY_NS
    new_dirs: dict[str, dict] = {}
    seen_inodes: set[tuple[int, int]] = set()
    stack = ["."]
    while stack:
        rel = stack.pop()
        path = str(root) if rel == "." else os.path.join(str(root), rel)
        try:
            st = os.stat(path)
        except OSError:
            continue  # vanished since its parent was listed
        if (st.st_dev, st.st_ino) in seen_inodes:
            continue  # a symbolic link back into the tree
        seen_inodes.add((st.st_dev, st.st_ino))
        old = old_dirs.get(rel)
        entry = None
        if old is not None and old["mtime_ns"] == st.st_mtime_ns and st.st_mtime_ns < racy_after:
            entry = _recheck_files(path, old, racy_after, read_header, stats)
        if entry is None:
            entry = _list_folder(path, rel, st.st_mtime_ns, old, racy_after, excluded, extensions, read_header,
                                 stats)
        new_dirs[rel] = entry
        stack.extend(sub if rel == "." else f"{rel}/{sub}" for sub in reversed(entry["subdirs"]))
    return new_dirs


def _recheck_files(path: str, old: dict, racy_after: int, read_header, stats: IndexStats) -> dict | None:
    """An unchanged folder's entry with edited files' headers re-read; None when a file vanished."""
    files = {}
    for name, (size, mtime, header) in old["files"].items():
        file_path = os.path.join(path, name)
        try:
            key = _stat_key(os.stat(file_path))
        except OSError:
            return None  # removed without the folder's time changing (some network file systems): re-list
        if key != [size, mtime] or mtime >= racy_after:
            stats.headers_read.append(file_path)
            header = read_header(file_path)
        files[name] = [*key, header]
    return {"mtime_ns": old["mtime_ns"], "subdirs": old["subdirs"], "files": files}


def _list_folder(path: str, rel: str, mtime_ns: int, old: dict | None, racy_after: int, excluded: set[str],
                 extensions: tuple[str, ...], read_header, stats: IndexStats) -> dict:
    stats.listed.append(rel)
    old_files = old["files"] if old else {}
    subdirs, files = [], {}
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as err:
        # Skipped and said so; stored with no time, so the next load lists it again (fixing the permissions does
        # not change a folder's modification time).
        stats.unreadable.append(f"{path} ({err.strerror or err})")
        return {"mtime_ns": -1, "subdirs": [], "files": {}}
    for e in entries:
        if e.name.startswith("."):
            continue
        try:
            is_dir = e.is_dir()  # follows symbolic links, as discovery always has
        except OSError as err:
            stats.unreadable.append(f"{e.path} ({err.strerror or err})")
            mtime_ns = -1  # list this folder again next time
            continue
        if is_dir:
            if str(Path(e.path).resolve()) not in excluded:
                subdirs.append(e.name)
        elif _is_audio(e.name, extensions):
            try:
                key = _stat_key(e.stat())
            except OSError as err:  # e.g. a link to a file that is gone
                stats.unreadable.append(f"{e.path} ({err.strerror or err})")
                mtime_ns = -1
                continue
            previous = old_files.get(e.name)
            if previous is not None and previous[:2] == key and key[1] < racy_after:
                files[e.name] = previous
            else:
                stats.headers_read.append(e.path)
                files[e.name] = [*key, read_header(e.path)]
    return {"mtime_ns": mtime_ns, "subdirs": subdirs, "files": files}


def trust_requested(is_main_process: bool) -> bool:
    """Whether this parse should trust the index: always inside a job Snakemake started (a cluster job, a
    group job), or when the environment variable ``MIRFLOW_TRUST_TRACK_INDEX`` is ``1``."""
    return not is_main_process or os.environ.get(TRUST_ENV, "") == "1"
