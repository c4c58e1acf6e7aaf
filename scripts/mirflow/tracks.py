"""Track discovery under the input folder.

Layouts (both may be mixed in one folder tree):

* a folder containing ``full_mix.<ext>`` is one track; ``drums|bass|other|vocals.<ext>``
  beside it are its provided stems (the layout users of the old tool already have);
* any other audio file is one track of its own.

The track id is the path relative to the input folder without extension
(POSIX separators); for a track folder it is the folder's path. Inputs are
only ever read.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .audio import AUDIO_EXTENSIONS
from .errors import ConfigError
from .registry import STEM_NAMES

#: When a track has the same file in several formats (the old tool wrote an extra
#: full_mix.flac beside ogg/m4a inputs), prefer lossless, then the rest.
_FORMAT_PREFERENCE = ("flac", "wav", "aiff", "aif", "ogg", "opus", "mp3", "m4a")


@dataclass(frozen=True)
class Track:
    """One track to analyse.

    Attributes
    ----------
    id : str
        Path relative to the input folder without extension, POSIX separators.
    audio : str
        Absolute path of the full mix.
    stems : dict
        Provided stems: stem name -> absolute path.
    notes : tuple of str
        Discovery remarks shown to the user (duplicates resolved, files ignored).
    """

    id: str
    audio: str
    stems: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """Last part of the id: the ``<name>`` of ``<name>.INFO``."""
        return self.id.rsplit("/", 1)[-1]


def _is_audio(name: str, extensions: tuple[str, ...]) -> bool:
    return not name.startswith(".") and name.rsplit(".", 1)[-1].lower() in extensions and "." in name


def _pick(paths: list[str]) -> tuple[str, list[str]]:
    """Preferred file among same-named files in several formats, and the ignored ones."""
    ranked = sorted(paths, key=lambda p: (_FORMAT_PREFERENCE.index(p.rsplit(".", 1)[-1].lower())
                                          if p.rsplit(".", 1)[-1].lower() in _FORMAT_PREFERENCE else 99, p))
    return ranked[0], ranked[1:]


def discover_tracks(input_dir: str | os.PathLike, exclude_dirs: tuple[str, ...] = (),
                    extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> list[Track]:
    """Find every track under ``input_dir``.

    Parameters
    ----------
    input_dir : str or PathLike
        Folder to scan recursively. Hidden files and folders (starting with ".")
        are skipped, and so is any folder in ``exclude_dirs`` (the results
        folder, when it lies inside the input folder).
    exclude_dirs : tuple of str
        Absolute folders not to descend into.
    extensions : tuple of str
        Audio extensions, lower case without dot.

    Returns
    -------
    list of Track
        Sorted by id. Ids are unique: when two inputs would share an id (``a/x.mp3``
        and ``a/x.flac``), the colliding loose files keep their extension in the id
        (``a/x.mp3``) and a note says so.

    Raises
    ------
    ConfigError
        If ``input_dir`` is not a readable folder.
    """
    root = Path(input_dir).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"input_dir '{input_dir}' is not a folder.",
                          "set input_dir in config/config.yaml or pass --config input_dir=/path/to/music "
                          "(make run INPUT=/path/to/music).")
    excluded = {str(Path(d).resolve()) for d in exclude_dirs}
    candidates: dict[str, list[tuple[str, dict, list[str]]]] = defaultdict(list)

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith(".") and str(Path(dirpath, d).resolve()) not in excluded)
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for track_id, item in folder_candidates(root, rel_dir, [f for f in filenames if _is_audio(f, extensions)]):
            candidates[track_id].append(item)
    return assemble_tracks(candidates)


def folder_candidates(root: Path, rel_dir: str, audio_names: list[str]
                      ) -> list[tuple[str, tuple[str, dict, list[str]]]]:
    """The tracks one folder holds: (track id, (full mix path, stems, notes)) for each.

    Parameters
    ----------
    root : Path
        The resolved input folder.
    rel_dir : str
        The folder, relative to ``root`` (POSIX separators, ``"."`` for ``root`` itself).
    audio_names : list of str
        Names of the audio files directly in that folder.
    """
    dirpath = str(root) if rel_dir == "." else os.path.join(str(root), rel_dir)
    by_stem: dict[str, list[str]] = defaultdict(list)
    for f in sorted(audio_names):
        by_stem[f.rsplit(".", 1)[0]].append(os.path.join(dirpath, f))
    out = []
    loose = dict(by_stem)
    if "full_mix" in by_stem:
        mix, ignored = _pick(by_stem["full_mix"])
        stems, notes = {}, [f"ignored {os.path.basename(i)} (same track as {os.path.basename(mix)})"
                            for i in ignored]
        for stem in STEM_NAMES:
            if stem in by_stem:
                stems[stem], more = _pick(by_stem[stem])
                notes += [f"ignored stem {os.path.basename(i)} (using {os.path.basename(stems[stem])})"
                          for i in more]
                loose.pop(stem)
        loose.pop("full_mix")
        out.append((rel_dir if rel_dir != "." else root.name, (mix, stems, notes)))
    for base, paths in loose.items():
        for path in paths:
            out.append((base if rel_dir == "." else f"{rel_dir}/{base}", (path, {}, [])))
    return out


def assemble_tracks(candidates: dict[str, list[tuple[str, dict, list[str]]]]) -> list[Track]:
    """Tracks from every folder's candidates, with unique ids (see :func:`discover_tracks`), sorted by id."""
    tracks = []
    for track_id, items in candidates.items():
        if len(items) == 1:
            mix, stems, notes = items[0]
            tracks.append(Track(track_id, mix, stems, tuple(notes)))
            continue
        for mix, stems, notes in items:
            if stems or os.path.basename(mix).rsplit(".", 1)[0] == "full_mix":
                unique_id = track_id
            else:
                unique_id = f"{track_id}.{mix.rsplit('.', 1)[-1]}"
            notes = notes + [f"id '{unique_id}': several inputs would share the id '{track_id}'"]
            tracks.append(Track(unique_id, mix, stems, tuple(notes)))
    ids = [t.id for t in tracks]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dupes: set[str] = set()
        for i in ids:
            (dupes if i in seen else seen).add(i)
        raise ConfigError(f"several inputs map to the same track id: {sorted(dupes)}.",
                          "rename one of the files so that each track has a unique path.")
    return sorted(tracks, key=lambda t: t.id)
