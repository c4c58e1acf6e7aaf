"""AudioCraft ``MusicInfo`` sidecars built from ``.INFO`` files.

AudioCraft's ``MusicDataset`` reads ``<audio stem>.json`` beside each audio file and builds a
``MusicInfo`` from it. By default (``info_fields_required=True``) every field must be present, so
the sidecar always holds all of them, with ``null`` for what is unknown: title, artist, key, bpm,
genre, moods, keywords, description, name, instrument.

Sidecars are written beside crops (``crops/<name>_<N>.json`` beside ``crops/<name>_<N>.flac``),
which live in the results folder. Input tracks are read in place and mirflow never writes into
the input folder, so full mixes have no sidecar: train AudioCraft on crops (or copy the audio
elsewhere first and call :func:`write_musicinfo_sidecar`).

The manifest ``<results>/audiocraft/data.jsonl.gz`` (workflow rule ``audiocraft_manifest``) lists
exactly the audio files that have a sidecar: each crop's mix, never a crop stem (stems have no
sidecar, and AudioCraft's own ``python -m audiocraft.data.audio_dataset RESULTS_DIR`` would pick
them up). One JSON object per line, AudioCraft's ``AudioMeta``: ``path`` (absolute), ``duration``
(s), ``sample_rate`` (Hz), ``amplitude`` and ``weight`` (null: not computed; AudioCraft then samples
by duration), ``info_path`` (null: the sidecar is found beside the audio). Point a dataset's
``datasource`` at the ``audiocraft`` folder (``AudioDataset.from_meta`` reads its ``data.jsonl.gz``).
The paths are absolute, as AudioCraft's own manifests: after moving the results folder, rebuild it
with ``python -m mirflow.exports.audiocraft RESULTS_DIR --manifest RESULTS_DIR/audiocraft/data.jsonl.gz``.

``python -m mirflow.exports.audiocraft RESULTS_DIR`` writes the sidecars of every crop.

Field sources (strings normalised with :func:`mirflow.textnorm.normalize_text`):

* ``title``, ``artist``: ``track_metadata_title``, ``track_metadata_artist``;
* ``key``: the madmom key label ``key`` (e.g. "A minor"); AudioCraft lower-cases it;
* ``bpm``: ``bpm`` when ``bpm_is_defined`` is not 0;
* ``genre``: the most probable ``essentia_genre`` label (leaf name), else the ``track_metadata_genre`` tag;
* ``moods``: ``essentia_mood`` labels (list); ``keywords``: ``essentia_genre`` labels (list, up to
  ``max_keywords``); ``instrument``: ``essentia_instrument`` labels joined with ", "; all with
  probability >= ``label_threshold``;
* ``description``: the prompt template of :mod:`mirflow.exports.prompt` (``null`` when a required
  field of the template is missing);
* ``name``: the audio file's stem (set by the writer).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..textnorm import normalize_text
from .prompt import DEFAULT_PARAMS as PROMPT_PARAMS
from .prompt import build_prompt, invalid_by_flag, top_labels

#: Fields of AudioCraft's MusicInfo written to every sidecar.
MUSICINFO_FIELDS = ("title", "artist", "key", "bpm", "genre", "moods", "keywords", "description", "name",
                    "instrument")

#: Parameters (JSON-able): the prompt parameters (``template`` renders ``description``) plus ``max_keywords``.
DEFAULT_PARAMS: dict[str, Any] = {**PROMPT_PARAMS, "max_keywords": 10}

_AUDIO_EXTENSIONS = (".flac", ".wav", ".mp3", ".ogg", ".opus", ".m4a", ".aiff", ".aif")


def _text(info: dict[str, Any], key: str, params: dict[str, Any]) -> str | None:
    value = info.get(key)
    if not isinstance(value, str):
        return None
    return normalize_text(value, params["drop_non_ascii"]) or None


def _labels(info: dict[str, Any], key: str, params: dict[str, Any], limit: int) -> list[str]:
    labels = top_labels(info.get(key), params["label_threshold"], limit, params["label_style"],
                        params["label_parent_separator"])
    return [t for t in (normalize_text(label, params["drop_non_ascii"]) for label in labels) if t]


def musicinfo_from_info(info: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The MusicInfo fields of one .INFO (see the module docstring); unknown fields are None.

    Parameters
    ----------
    info : dict
        A parsed .INFO (feature keys plus ``_provenance``).
    params : dict, optional
        See :data:`DEFAULT_PARAMS`.

    Returns
    -------
    dict
        Every field of :data:`MUSICINFO_FIELDS`; ``bpm`` is a float in BPM, ``moods`` and ``keywords``
        are lists of strings, the rest strings.
    """
    p = {**DEFAULT_PARAMS, **(params or {})}
    bpm = info.get("bpm")
    usable_bpm = (float(bpm) if isinstance(bpm, (int, float)) and not isinstance(bpm, bool)
                  and not invalid_by_flag(info, "bpm", p) else None)
    genres = _labels(info, "essentia_genre", p, p["max_keywords"])
    moods = _labels(info, "essentia_mood", p, p["max_labels"])
    instruments = _labels(info, "essentia_instrument", p, p["max_labels"])
    description, _reason = build_prompt(info, p)
    return {
        "title": _text(info, "track_metadata_title", p),
        "artist": _text(info, "track_metadata_artist", p),
        "key": _text(info, "key", p),
        "bpm": usable_bpm,
        "genre": genres[0] if genres else _text(info, "track_metadata_genre", p),
        "moods": moods or None,
        "keywords": genres or None,
        "description": description,
        "name": None,
        "instrument": ", ".join(instruments) if instruments else None,
    }


def sidecar_path(audio_path: str | os.PathLike) -> Path:
    """``<audio stem>.json`` beside the audio, where AudioCraft looks for it."""
    return Path(audio_path).with_suffix(".json")


def write_musicinfo_sidecar(audio_path: str | os.PathLike, info: dict[str, Any],
                            params: dict[str, Any] | None = None) -> Path:
    """Write the MusicInfo sidecar of ``audio_path`` (``name`` = the audio's stem); returns its path."""
    from ..jsonio import write_json_atomic

    data = musicinfo_from_info(info, params)
    data["name"] = Path(audio_path).stem
    path = sidecar_path(audio_path)
    write_json_atomic(path, data)
    return path


def crop_audio_for(info_path: Path) -> Path | None:
    """The crop audio beside ``crops/<name>_<N>.INFO`` (any audio extension), or None."""
    for ext in _AUDIO_EXTENSIONS:
        candidate = info_path.with_suffix(ext)
        if candidate.is_file():
            return candidate
    return None


def write_crop_sidecars(results_dir: str | os.PathLike, params: dict[str, Any] | None = None
                        ) -> tuple[list[Path], list[dict[str, str]]]:
    """Write a sidecar beside every crop under ``results_dir`` that has a .INFO.

    Returns
    -------
    written : list of Path
        The sidecars written.
    skipped : list of dict
        ``{"info", "reason"}`` for crops without audio or with an unreadable .INFO.
    """
    from ..jsonio import read_json
    from ..stats import find_info_files

    written, skipped = [], []
    crops, _ = find_info_files(results_dir, "crops")
    for info_path in crops:
        audio = crop_audio_for(info_path)
        if audio is None:
            skipped.append({"info": str(info_path), "reason": "no crop audio beside the .INFO"})
            continue
        try:
            info = read_json(info_path)
        except (OSError, ValueError) as err:
            skipped.append({"info": str(info_path), "reason": f"unreadable .INFO: {err}"})
            continue
        written.append(write_musicinfo_sidecar(audio, info, params))
    return written, skipped


def manifest_entries(results_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """AudioCraft ``AudioMeta`` rows of every crop mix under ``results_dir`` that has its sidecar, sorted by path.

    Returns
    -------
    list of dict
        ``{"path", "duration", "sample_rate", "amplitude", "weight", "info_path"}`` (see the module
        docstring): ``path`` absolute, ``duration`` in seconds, ``sample_rate`` in Hz.
    """
    import soundfile as sf

    from ..stats import find_info_files

    rows = []
    crops, _ = find_info_files(results_dir, "crops")
    for info_path in crops:
        audio = crop_audio_for(info_path)
        if audio is None or not sidecar_path(audio).is_file():
            continue
        facts = sf.info(str(audio))
        rows.append({"path": str(audio.resolve()), "duration": facts.frames / facts.samplerate,
                     "sample_rate": int(facts.samplerate), "amplitude": None, "weight": None, "info_path": None})
    return sorted(rows, key=lambda row: row["path"])


def write_manifest(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Write AudioCraft's jsonl manifest (gzip when ``path`` ends in .gz, reproducible: no timestamp)."""
    import gzip
    import io
    import json

    from ..jsonio import write_bytes_atomic

    text = "".join(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n" for row in rows).encode("utf-8")
    if str(path).lower().endswith(".gz"):
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as handle:
            handle.write(text)
        text = buf.getvalue()
    write_bytes_atomic(path, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write AudioCraft MusicInfo sidecars beside every crop.")
    parser.add_argument("results_dir")
    parser.add_argument("--manifest", metavar="PATH",
                        help="also write AudioCraft's manifest (jsonl, .gz to compress) of the files with a sidecar")
    args = parser.parse_args(argv)
    written, skipped = write_crop_sidecars(args.results_dir)
    for s in skipped:
        print(f"skipped {s['info']}: {s['reason']}")
    print(f"wrote {len(written)} sidecar(s), skipped {len(skipped)}")
    if args.manifest:
        rows = manifest_entries(args.results_dir)
        write_manifest(args.manifest, rows)
        print(f"wrote {args.manifest}: {len(rows)} file(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
