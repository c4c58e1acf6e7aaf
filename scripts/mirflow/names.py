"""Which file names the workflow can carry, and the one Snakemake check that must not judge track names.

Snakemake reads every ``{word}`` in a path as a wildcard (there is no escape: ``{{word}}`` still contains
``{word}``), and a results file name is the track's name plus a suffix, so a name longer than the file
system allows for those files cannot be written. Such a track is set aside with its reason (it fails on its
own, in rule ``unusable_track``); every other track runs.

Snakemake also refuses any job whose wildcard value ends in a substring repeated 20 or more times
(``snakemake.dag.DAG.check_periodic_wildcards``, a guard against rules that would derive ever longer file
names from their own outputs) and, when that job is the only producer of a target, stops the whole DAG.
A file named ``Intro_____________________.flac`` is legal and must not do that:
:func:`exempt_track_names_from_periodic_check` lets values that are known track ids, names or parents
pass, which is safe because every mirflow input function resolves its wildcards against the finite set of
discovered tracks (an unknown value raises), so no value can grow without end.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Set as AbstractSet

#: Bytes a results file name may add to the track's name: ``<name>_<crop>_<stem>.flac`` (``_12345_vocals``)
#: and the atomic writers' temporary names stay within this.
NAME_SUFFIX_BYTES = 32
_WILDCARD = re.compile(r"\{\s*[.\w]+\s*(,[^{}]*)?\}")


def snakemake_wildcard_in(path: str) -> str | None:
    """The first part of ``path`` that Snakemake would read as a wildcard (``{word}``), else None."""
    try:  # Snakemake's own pattern, so the answer is exactly Snakemake's
        from snakemake_interface_storage_plugins.io import WILDCARD_REGEX as pattern
    except ImportError:  # pragma: no cover - Snakemake is a runtime dependency of the workflow
        pattern = _WILDCARD
    match = pattern.search(path)
    return match.group(0) if match else None


def name_max(folder: str) -> int:
    """Longest file name in bytes the file system of ``folder`` (or its nearest existing parent) allows."""
    folder = os.path.abspath(folder)
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def unusable_reason(track_id: str, paths: list[str], *, results_dir: str, reserved: set[str],
                    limit: int, track_ids: AbstractSet[str] = frozenset()) -> str | None:
    """Why the workflow cannot process a track, or None when it can.

    Parameters
    ----------
    track_id : str
        The track's id (its results folder below ``results_dir``).
    paths : list of str
        The track's input files (full mix and provided stems).
    results_dir : str
        The results folder.
    reserved : set of str
        Top-level names of the corpus outputs in the results folder (a track id may not start with one).
    limit : int
        Longest file name in bytes allowed in the results folder (:func:`name_max`).
    track_ids : set of str
        Every discovered track id: a track may not lie inside another track's ``crops`` folder (a folder
        output, which its rule empties before writing).
    """
    for path in (track_id, *paths):
        braces = snakemake_wildcard_in(path)
        if braces:
            return (f"'{braces}' in '{path}' reads as a Snakemake wildcard (Snakemake has no escape for it); "
                    "rename it without the braces")
    top = track_id.split("/", 1)[0]
    if top in reserved:
        return (f"its results folder {results_dir}/{top}/ would overwrite the corpus outputs "
                f"({', '.join(sorted(reserved))}); point input_dir one level deeper or rename that folder")
    parts = track_id.split("/")
    for i in range(1, len(parts) - 1):
        if parts[i] == "crops" and "/".join(parts[:i]) in track_ids:
            owner = "/".join(parts[:i])
            return (f"its results folder would lie inside the crops folder of track '{owner}' "
                    f"({results_dir}/{owner}/crops/); rename the input folder '{parts[i]}' of '{owner}'")
    name = parts[-1]
    size = len(name.encode("utf-8", "surrogateescape"))
    if size + NAME_SUFFIX_BYTES > limit:
        return (f"its name is {size} bytes long; result files add up to {NAME_SUFFIX_BYTES} bytes to it and the "
                f"file system allows {limit}: shorten it to at most {limit - NAME_SUFFIX_BYTES} bytes")
    return None


def set_aside(tracks: dict, *, results_dir: str, reserved: set[str]) -> dict[str, tuple]:
    """Remove from ``tracks`` (id -> Track, changed in place) every track the workflow cannot carry.

    Returns
    -------
    dict
        Key (16 hex digits of the id's SHA-1: a name that is safe in any path) -> (Track, reason).
    """
    limit = name_max(results_dir)
    ids = set(tracks)
    unusable = {}
    for track in list(tracks.values()):
        reason = unusable_reason(track.id, [track.audio, *track.stems.values()], results_dir=results_dir,
                                 reserved=reserved, limit=limit, track_ids=ids)
        if reason:
            key = hashlib.sha1(track.id.encode("utf-8", "surrogateescape")).hexdigest()[:16]
            unusable[key] = (track, reason)
            del tracks[track.id]
    return unusable


def exempt_track_names_from_periodic_check(values: set[str]) -> bool:
    """Let Snakemake's periodic-wildcard check pass the given wildcard values (track ids, names, parents).

    Every other value is still checked exactly as Snakemake does. Returns False (and changes nothing) when
    the installed Snakemake has no such check.
    """
    from snakemake.dag import DAG
    from snakemake.exceptions import PeriodicWildcardError

    if not hasattr(DAG, "check_periodic_wildcards"):
        return False
    known = frozenset(values)

    def check_periodic_wildcards(self, job):
        for wildcard, value in job.wildcards_dict.items():
            if value in known:
                continue
            periodic = self.periodic_wildcard_detector.is_periodic(value)
            if periodic is not None:
                raise PeriodicWildcardError(
                    f"The value {periodic} in wildcard {wildcard} is periodically repeated ({value}). "
                    "This would lead to an infinite recursion. To avoid this, e.g. restrict the wildcards "
                    "in this rule to certain values.", rule=job.rule)

    DAG.check_periodic_wildcards = check_periodic_wildcards
    return True


def track_wildcard_values(tracks) -> set[str]:
    """Every value the workflow's track wildcards take: ``track`` (the id), ``name`` and ``parent``."""
    return {v for t in tracks for v in (t.id, t.name, t.id[: len(t.id) - len(t.name)])}
