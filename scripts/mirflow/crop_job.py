"""Training crops of one track: audio, stem crops, one ``<name>_<N>.INFO`` per crop and its AudioCraft
MusicInfo sidecar ``<name>_<N>.json``.

Families whose crop policy (catalogue) is ``computed`` are computed on the crop's
own audio and on the grids sliced to the crop; ``copied`` families are copied from
the track's .INFO and listed in ``_provenance.copied_from_track``; the crop's own
``beat_count``, ``bpm``... therefore always describe the crop, never the track.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from . import __version__
from .audio import AudioSignal
from .catalogue import load_catalogue
from .crops import apply_fades, plan_crops, slice_grid
from .jsonio import write_json_atomic
from .merge import INFO_INLINE_FROM
from .params import from_config
from .provenance import absent_reasons
from .registry import FAMILIES, STEM_NAMES
from .resolved import resolve_keys
from .result import FeatureResult
from .runner import JobContext, compute_family


class CropEntry(TypedDict):
    """One crop in ``crops.json``: file names relative to the crops folder, bounds in samples."""

    index: int
    audio: str
    stems: dict[str, str]
    info: str
    start_sample: int
    end_sample: int


class CropManifest(TypedDict):
    """``crops.json`` of one track: the crop plan's metadata and one entry per crop."""

    track_id: str
    plan: dict[str, Any]
    crops: list[CropEntry]


def beat_positions(beats: np.ndarray, downbeats: np.ndarray, tolerance_s: float = 1e-3) -> np.ndarray:
    """Bar position of each beat (1 = downbeat), counted from the last downbeat before it.

    Beats before the first downbeat count backwards from it when the bar length is
    known (the most common distance between downbeats, in beats), else get 0.
    """
    beats = np.asarray(beats, dtype=np.float64)
    is_down = np.array([np.any(np.abs(downbeats - b) <= tolerance_s) for b in beats], dtype=bool)
    positions = np.zeros(len(beats), dtype=np.int64)
    down_idx = np.nonzero(is_down)[0]
    if down_idx.size == 0:
        return positions
    bar = int(np.bincount(np.diff(down_idx)).argmax()) if down_idx.size > 1 else 0
    for i in range(len(beats)):
        previous = down_idx[down_idx <= i]
        if previous.size:
            positions[i] = i - previous[-1] + 1
        elif bar:
            positions[i] = (bar - (down_idx[0] - i) % bar) % bar + 1
    return positions


def crop_rhythm(signal: AudioSignal, beats: np.ndarray, downbeats: np.ndarray, settings: dict) -> FeatureResult:
    """Rhythm keys of a crop from the track's grids sliced to it and the crop's own onsets."""
    from .features import rhythm
    from .features import rhythm_detectors as det

    # The same conversion as runner.compute_family for the families it runs (defaults for omitted keys).
    p = from_config(rhythm.RhythmParams, settings, where="rhythm")
    mono_44k, _note = det.resample_for_madmom(signal.mono(), signal.sample_rate)
    onsets, strengths = det.madmom_onsets(mono_44k, p)
    result = rhythm.full_mix_features(beats, beat_positions(beats, downbeats), onsets, strengths,
                                      signal.duration_s, p)
    result.mark_all_absent(("bpm_madmom", "bpm_essentia"),
                           "not computed per crop (a whole-track tempo estimate; see the track's .INFO)")
    return result


def _crop_signal(samples: np.ndarray, sample_rate: int, path: str) -> AudioSignal:
    return AudioSignal(samples=samples, sample_rate=sample_rate, path=path, decoder="crop")


def compute_crop_families(mix: AudioSignal, stems: dict[str, AudioSignal], skipped_stems: list[str],
                          beats: np.ndarray, downbeats: np.ndarray, settings: dict[str, dict]) -> tuple[
                              FeatureResult, dict[str, int]]:
    """Every ``computed`` family on one crop. Returns the values/reasons and the family versions used.

    The families run through the same processor as track jobs (``runner.compute_family``) on a job
    context holding the crop's audio, its stems and the track's grids sliced to it; only the full-mix
    rhythm differs (its grids come from the track, not from a new beat tracking of the crop).
    """
    catalogue = load_catalogue()
    result, versions = FeatureResult(), {}
    ctx = JobContext({}, signals={"audio": mix, **stems},
                     unavailable=dict.fromkeys(skipped_stems, "stem not cropped (crops.skip_stems)"),
                     grids={"beats": beats})
    for name, fam in FAMILIES.items():
        if catalogue.crop_policy.get(name) != "computed" or name not in settings:
            continue
        versions[name] = fam.version
        if name == "rhythm":
            result.update(crop_rhythm(mix, beats, downbeats, settings[name]))
        else:
            result.update(compute_family(fam, settings[name], ctx))
    return result, versions


def write_audio(path: str, samples: np.ndarray, sample_rate: int) -> None:
    """FLAC 24-bit, written to a temporary name and renamed."""
    import soundfile as sf

    from .jsonio import atomic_path

    with atomic_path(path) as tmp:
        sf.write(tmp, samples.T, sample_rate, format="FLAC", subtype="PCM_24")


def make_crops(track_id: str, name: str, mix: AudioSignal, stems: dict[str, AudioSignal], beats: np.ndarray,
               downbeats: np.ndarray, track_info: dict[str, Any], crop_params: dict,
               family_settings: dict[str, dict], out_dir: str, export_params: dict | None = None,
               resolved_sources: dict[str, list[str]] | None = None) -> CropManifest:
    """Write every crop of a track into ``out_dir`` and return the crop manifest.

    Raises
    ------
    KeyError, TypeError
        Via the catalogue when a crop value is not catalogued or has the wrong type (a bug).
    """
    catalogue = load_catalogue()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_crops(mix.mono(), mix.sample_rate, beats, downbeats, crop_params)
    skip = [s for s in crop_params.get("skip_stems", []) if s in stems]
    kept_stems = {s: sig for s, sig in stems.items() if s not in skip}
    copied_keys = [k for k in track_info if k != "_provenance"
                   and catalogue.crop_policy.get(catalogue.entry(k).family) == "copied"]
    track_prov = track_info.get("_provenance", {})
    track_absent = absent_reasons(track_prov)
    # A copied family the track lacks is missing in every crop too: its reason once, with its keys.
    crop_missing = {fam: f"absent in the track: {why}"
                    for fam, why in (track_prov.get("missing_families") or {}).items()
                    if catalogue.crop_policy.get(fam) == "copied"}
    crop_missing_keys = {fam: keys for fam, keys in (track_prov.get("missing_family_keys") or {}).items()
                         if fam in crop_missing}
    in_missing = {k for keys in crop_missing_keys.values() for k in keys}
    manifest: CropManifest = {"track_id": track_id, "plan": plan.meta, "crops": []}
    sr = mix.sample_rate
    for crop in plan.crops:
        started = time.perf_counter()
        stem_name = f"{name}_{crop.index}"
        audio_path = str(out / f"{stem_name}.flac")
        mix_crop = apply_fades(mix.samples[:, crop.start:crop.end], sr, crop_params["fade_ms"])
        write_audio(audio_path, mix_crop, sr)
        stem_crops = {}
        for stem, sig in kept_stems.items():
            if sig.sample_rate != sr:
                raise ValueError(f"stem {stem} has sample rate {sig.sample_rate}, the full mix {sr}: "
                                 "crops need stems at the full mix's rate")
            data = apply_fades(sig.samples[:, crop.start:crop.end], sr, crop_params["fade_ms"])
            path = str(out / f"{stem_name}_{stem}.flac")
            write_audio(path, data, sr)
            stem_crops[stem] = _crop_signal(data, sr, path)
        start_s, end_s = crop.start / sr, crop.end / sr
        crop_beats, crop_downbeats = slice_grid(beats, start_s, end_s), slice_grid(downbeats, start_s, end_s)
        values, versions = compute_crop_families(
            _crop_signal(mix_crop, sr, audio_path), stem_crops, skip, crop_beats, crop_downbeats, family_settings)
        info: dict[str, Any] = {
            "position": round(start_s / mix.duration_s, 6), "start_time": round(start_s, 6),
            "end_time": round(end_s, 6), "start_sample": int(crop.start), "end_sample": int(crop.end),
            "duration": round(end_s - start_s, 6), "beats": [round(float(t), 6) for t in crop_beats],
            "downbeats": [round(float(t), 6) for t in crop_downbeats],
        }
        info.update(values.values)
        absent = dict(values.absent)
        for key in copied_keys:
            info[key] = track_info[key]
        for key, reason in track_absent.items():
            if key in catalogue and catalogue.crop_policy.get(catalogue.entry(key).family) == "copied" \
                    and key not in in_missing:
                absent.setdefault(key, f"absent in the track: {reason}")
        brief = {**absent, **{k: f"family {fam} not computed" for fam, keys in crop_missing_keys.items()
                              for k in keys}}
        resolved, resolved_absent, resolved_provenance = resolve_keys(info, brief, resolved_sources)
        info.update(resolved)
        absent.update(resolved_absent)
        warnings = [w for k, v in info.items() if (w := catalogue.check_value(k, v))]
        info = dict(sorted(info.items()))
        info["_provenance"] = {
            "track_id": track_id, "crop_index": crop.index, "mirflow_version": __version__,
            "crop_plan": dict(plan.meta), "families_computed": versions,
            "copied_from_track": sorted(copied_keys), "missing_families": crop_missing,
            "missing_family_keys": crop_missing_keys, "absent": dict(sorted(absent.items())),
            "resolved": resolved_provenance, "warnings": warnings,
            "wall_time_s": round(time.perf_counter() - started, 3),
        }
        write_json_atomic(out / f"{stem_name}.INFO", info, inline_from=INFO_INLINE_FROM)
        from .exports.audiocraft import write_musicinfo_sidecar

        write_musicinfo_sidecar(audio_path, info, export_params)  # AudioCraft's <audio stem>.json
        # File names relative to the crops folder, so the folder can be moved or shared as a whole.
        manifest["crops"].append({"index": crop.index, "audio": Path(audio_path).name,
                                  "stems": {s: Path(c.path).name for s, c in stem_crops.items()},
                                  "info": f"{stem_name}.INFO", "start_sample": crop.start,
                                  "end_sample": crop.end})
    write_json_atomic(out / "crops.json", manifest)
    return manifest


def crops_job(smk) -> None:
    """Entry point of the crops rule script."""
    from .audio import load_audio
    from .features.rhythm import read_times
    from .jitcache import ensure_warm
    from .jsonio import read_info
    from .runner import job_logging, track_id

    track = track_id(smk.wildcards)
    with job_logging(smk.log[0], track, "crops") as logger:
        ensure_warm(log=logger.info)  # crops compute librosa-based families: see mirflow.jitcache
        mix = load_audio(smk.input.audio)
        stems = {s: load_audio(smk.input[s]) for s in STEM_NAMES if s in smk.input.keys()}
        beats = read_times(smk.input.beats) if "beats" in smk.input.keys() else np.zeros(0)
        downbeats = (read_times(smk.input.downbeats) if "downbeats" in smk.input.keys()
                     else np.zeros(0))
        manifest = make_crops(track, smk.wildcards.name, mix, stems, beats, downbeats, read_info(smk.input.info),
                              dict(smk.params.settings), dict(smk.params.families), smk.output[0],
                              dict(smk.params.exports),
                              {k: list(v) for k, v in smk.params.resolved.items()})
        logger.info("wrote %d crop(s) of %s (%s)", len(manifest["crops"]), track, manifest["plan"])
