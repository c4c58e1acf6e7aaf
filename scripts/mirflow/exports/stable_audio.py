"""Stable Audio Tools ``custom_metadata_module``: prompts and numbers from mirflow's ``.INFO`` files.

Stable Audio Tools (SAT) loads this file by path and calls ``get_custom_metadata(info, audio)`` for
every training sample. ``info`` holds ``path`` (the audio file), ``relpath``, ``timestamps``,
``seconds_start``, ``seconds_total``, ``padding_mask`` and ``sample_rate``; the returned dict is
merged into it. This module returns ``{"prompt": "...", <number keys>...}``, or ``{"__reject__":
True}`` (SAT then draws another sample) when the file has no usable .INFO or lacks a required
feature.

Finding the .INFO of an audio file, in order:

1. the index ``sat_index.json`` the workflow writes into the results folder: the audio's path
   relative to the input (music) folder -> the .INFO path relative to the index's folder (tracks
   are read in place from the input folder and their results live elsewhere, so a track's .INFO
   cannot be found from its audio path alone). Neither side depends on where the folders are:
   after moving the music and the results folder (to a training machine), the index still
   works. An audio file is looked up by SAT's ``relpath`` (its path relative to the dataset
   ``path``), then by the longest tail of its path that is a key (so a dataset ``path`` above or
   below the music folder works too);
2. ``<audio without extension>.INFO`` beside the audio: crops ``crops/<name>_<N>.flac`` have
   ``crops/<name>_<N>.INFO``. Crop stems (``<name>_<N>_drums.flac``) have no .INFO and are
   rejected, so a dataset pointed at a crops folder trains on the mixes only.

Configuration: a JSON file named by the environment variable ``MIRFLOW_SAT_CONFIG`` (inherited by
SAT's data-loader workers), with any of the keys of :data:`mirflow.exports.prompt.DEFAULT_PARAMS`
plus ``index`` (path of ``sat_index.json``; relative paths are relative to the config file).
Without it the defaults apply and only .INFO files beside the audio are found. Example
``sat_config.json``::

    {
      "index": "sat_index.json",
      "template": "[{genres}, ][{moods}, ]{bpm:.0f} BPM[, {key}]",
      "number_keys": ["bpm", "lufs"],
      "label_threshold": 0.1,
      "max_labels": 3
    }

Here a file is used only when its tempo is trustworthy (``bpm`` present and ``bpm_is_defined`` = 1,
because ``bpm`` is required by the template and by ``number_keys``) and it has ``lufs``.

SAT dataset config (``--dataset-config dataset.json``)::

    {
      "dataset_type": "audio_dir",
      "datasets": [
        {
          "id": "my_music",
          "path": "/data/music",
          "custom_metadata_module": "/opt/mirflow/scripts/mirflow/exports/stable_audio.py"
        }
      ],
      "random_crop": true
    }

and, in the model config, conditioners for the returned keys, e.g. ``{"id": "prompt", "type": "t5",
"config": {"t5_model_name": "t5-base", "max_length": 128}}`` and ``{"id": "bpm", "type": "number",
"config": {"min_val": 40, "max_val": 220}}`` (SAT normalises numbers by min/max itself: values are
passed unchanged). Start training with ``MIRFLOW_SAT_CONFIG=/data/results/sat_config.json``.

Check what SAT will get before training::

    python -m mirflow.exports.stable_audio --config sat_config.json /data/music

prints the prompt and numbers (or the reason for rejection) of every audio file; ``--draws 5`` also
prints five prompts as training draws them. In training each sample's prompt leaves optional parts out
at random (``dropout``, seeded by ``seed``, the audio's ``relpath`` and the crop's ``seconds_start``;
see :mod:`mirflow.exports.prompt`).

The prompt is computed when SAT calls this module; ``pre_encode.py`` freezes it into the JSON
beside each latent, so re-run pre-encoding after changing the template.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

#: Environment variable naming the JSON configuration.
CONFIG_ENV = "MIRFLOW_SAT_CONFIG"
INDEX_FORMAT = "mirflow-sat-index"
_AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".aif", ".aiff", ".opus", ".m4a")


def _implementation():
    """This module as ``mirflow.exports.stable_audio``, imported by name.

    SAT loads the file under the name ``metadata_module`` and pickles ``get_custom_metadata`` into its
    workers, which may copy module globals; caches must live in a module imported normally (kept in
    ``sys.modules`` of each worker), so the entry point forwards to it.
    """
    try:
        from mirflow.exports import stable_audio
    except ImportError:
        # Loaded by file path: make the package importable from this file's location (scripts/).
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from mirflow.exports import stable_audio
    return stable_audio


def get_custom_metadata(info: dict, audio: Any) -> dict:
    """SAT entry point: ``{"prompt": ..., numbers...}`` or ``{"__reject__": True}``."""
    return _implementation().custom_metadata(info)


# ----------------------------------------------------------------------------- implementation

log = logging.getLogger("mirflow.exports.stable_audio")
_config_cache: dict[str, tuple[Any, dict]] = {}
_index_cache: dict[str, tuple[Any, dict[str, str]]] = {}
_result_cache: dict[str, tuple[Any, dict]] = {}
_reported_reasons: set[str | None] = set()


def _stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size)


def _load_cached(path: str, cache: dict, build):
    """``build(parsed JSON of path)``, recomputed only when the file's mtime or size changes."""
    stamp = _stamp(path)
    cached = cache.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    with open(path, encoding="utf-8") as handle:
        value = build(json.load(handle))
    cache[path] = (stamp, value)
    return value


def load_config(path: str | None = None) -> dict[str, Any]:
    """The export configuration: defaults, overridden by the JSON file ``path`` (or ``$MIRFLOW_SAT_CONFIG``).

    Raises
    ------
    ValueError
        If the file has unknown keys (a typo would otherwise silently use a default) or a bad template.
    """
    from .prompt import DEFAULT_PARAMS, parse_template

    path = path or os.environ.get(CONFIG_ENV) or None
    if not path:
        return {**DEFAULT_PARAMS, "index": None}

    def build(raw: dict) -> dict[str, Any]:
        unknown = set(raw) - set(DEFAULT_PARAMS) - {"index"}
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; known: "
                             f"{sorted(DEFAULT_PARAMS) + ['index']}")
        config = {**DEFAULT_PARAMS, "index": None, **raw}
        if config["index"]:
            config["index"] = str((Path(path).resolve().parent / config["index"]).resolve())
        parse_template(config["template"])
        return config

    return _load_cached(path, _config_cache, build)


def load_index(path: str) -> dict[str, str]:
    """The index: audio key (path relative to the input folder) -> absolute .INFO path (cached while unchanged).

    Version 1 indexes (absolute audio paths as keys) are read too.
    """

    def build(raw: dict) -> dict[str, str]:
        if raw.get("format") != INDEX_FORMAT:
            raise ValueError(f"{path} is not a mirflow SAT index (format {raw.get('format')!r})")
        base = Path(path).resolve().parent
        return {audio: str(base / info) for audio, info in raw["entries"].items()}

    return _load_cached(path, _index_cache, build)


def audio_key(audio: str | os.PathLike, input_dir: str | os.PathLike) -> str:
    """The index key of an audio file: its POSIX path relative to ``input_dir`` (symlinks resolved)."""
    real, root = Path(os.path.realpath(audio)), Path(os.path.realpath(input_dir))
    try:
        return real.relative_to(root).as_posix()
    except ValueError:
        return real.as_posix()  # outside the input folder (a config pointing elsewhere): kept absolute


def index_entries(pairs: dict[str, str], index_path: str | os.PathLike,
                  input_dir: str | os.PathLike) -> dict[str, Any]:
    """The JSON object of an index: audio paths relative to ``input_dir``, .INFO paths relative to the index."""
    base = Path(index_path).resolve().parent
    entries = {}
    for audio, info in sorted(pairs.items()):
        info_abs = Path(info).resolve()
        try:
            rel = info_abs.relative_to(base).as_posix()
        except ValueError:
            rel = str(info_abs)
        entries[audio_key(audio, input_dir)] = rel
    return {"format": INDEX_FORMAT, "version": 2, "keys": "audio path relative to the input folder",
            "entries": dict(sorted(entries.items()))}


def write_sat_index(index_path: str | os.PathLike, pairs: dict[str, str], input_dir: str | os.PathLike) -> None:
    """Write ``sat_index.json``: ``pairs`` maps each track's input audio path to its .INFO path."""
    from ..jsonio import write_json_atomic

    write_json_atomic(index_path, index_entries(pairs, index_path, input_dir))


def _lookup_keys(audio_path: str, relpath: str | None) -> list[str]:
    """Keys to try, best first: SAT's relpath, the absolute paths (version 1), then every tail of the path."""
    keys = [Path(relpath).as_posix()] if relpath else []
    keys += [os.path.abspath(audio_path), os.path.realpath(audio_path)]
    for path in dict.fromkeys((os.path.abspath(audio_path), os.path.realpath(audio_path))):
        parts = Path(path).parts[1:]
        keys += ["/".join(parts[i:]) for i in range(len(parts))]
    return keys


def find_info(audio_path: str, config: dict[str, Any], relpath: str | None = None) -> str | None:
    """The .INFO of an audio file: via the index, else ``<audio stem>.INFO`` beside it; None when neither.

    ``relpath`` is the audio's path relative to the dataset folder (SAT passes it in ``info``).
    """
    if config.get("index"):
        entries = load_index(config["index"])
        for candidate in _lookup_keys(audio_path, relpath):
            if candidate in entries:
                return entries[candidate]
    beside = os.path.splitext(audio_path)[0] + ".INFO"
    if os.path.isfile(beside):
        return beside
    return None


def explain(audio_path: str, config: dict[str, Any] | None = None, relpath: str | None = None,
            start: float | None = None, dropout: bool = False) -> tuple[dict | None, str | None, str | None]:
    """What SAT gets for one audio file: (values or None, reason when rejected, .INFO path used).

    With ``dropout`` the prompt is the sample's draw (seeded by the config's ``seed``, ``relpath`` or the
    path, and ``start`` in seconds), as in training; without, it has every available part.
    """
    from .prompt import conditioning, sample_rng

    config = config or load_config()
    info_path = find_info(audio_path, config, relpath)
    if info_path is None:
        return None, "no .INFO found (not in the index, none beside the audio)", None
    try:
        stamp = _stamp(info_path)
    except OSError as err:
        return None, f"cannot read {info_path}: {err}", info_path
    cached = _result_cache.get(info_path)
    if cached and cached[0] == stamp:
        data = cached[1]
    else:
        try:
            with open(info_path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as err:
            return None, f"unreadable .INFO {info_path}: {err}", info_path
        if not isinstance(data, dict):
            return None, f".INFO {info_path} is not a JSON object", info_path
        # Each data-loader worker keeps every .INFO it has seen: only the values and the reasons of absent keys.
        prov = data.get("_provenance")
        if isinstance(prov, dict):
            data["_provenance"] = {k: prov[k] for k in ("absent", "missing_families", "missing_family_keys")
                                   if k in prov}
        _result_cache[info_path] = (stamp, data)
    params = {k: v for k, v in config.items() if k != "index"}
    rng = sample_rng(params["seed"], relpath or audio_path, start) if dropout else None
    values, reason = conditioning(data, params, rng)
    return values, reason, info_path


def custom_metadata(info: dict) -> dict:
    """The dict SAT merges into ``info`` (see :func:`get_custom_metadata`)."""
    values, reason, info_path = explain(info["path"], load_config(), info.get("relpath"),
                                        info.get("seconds_start"), dropout=True)
    if values is None:
        if reason not in _reported_reasons:
            _reported_reasons.add(reason)
            log.warning("mirflow: rejecting %s: %s", info["path"], reason)
        return {"__reject__": True}
    return dict(values)


def _audio_files(paths: list[str]) -> list[tuple[str, str | None]]:
    """(audio path, its path relative to the folder given, as SAT's ``relpath``) of every audio file."""
    out: list[tuple[str, str | None]] = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out += [(os.path.join(root, f), os.path.relpath(os.path.join(root, f), p)) for f in sorted(files)
                        if f.lower().endswith(_AUDIO_EXTENSIONS) and not f.startswith(".")]
        else:
            out.append((p, None))
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Show the prompt and numbers SAT will get for each audio file.")
    parser.add_argument("paths", nargs="+", help="audio files or folders (as in the SAT dataset config)")
    parser.add_argument("--config", help=f"JSON configuration (default: ${CONFIG_ENV}, else built-in defaults)")
    parser.add_argument("--draws", type=int, default=0, metavar="N",
                        help="also print N prompts as training draws them (dropout), for crop starts 0, 1, ... s")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    used = rejected = 0
    for path, relpath in _audio_files(args.paths):
        values, reason, _ = explain(path, config, relpath)
        if values is None:
            rejected += 1
            print(f"REJECT  {path}: {reason}")
        else:
            used += 1
            print(f"OK      {path}: {json.dumps(values, ensure_ascii=False)}")
            for start in range(args.draws):
                drawn, why, _ = explain(path, config, relpath, float(start), dropout=True)
                shown = json.dumps(drawn["prompt"], ensure_ascii=False) if drawn else f"REJECT: {why}"
                print(f"  draw  {shown}")
    print(f"{used} used, {rejected} rejected")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
