"""Stem separation with Demucs, in-process (``demucs.apply.apply_model``), from checkpoints under ``models_dir``.

Checkpoints are loaded directly from the verified files (``demucs.states.load_model``)
and assembled into the bag the Demucs package defines for the model name
(``demucs/remote/<name>.yaml``: htdemucs is one model, htdemucs_ft four), so
nothing is looked up on the network. Stems keep absolute levels: the mixture
is standardised for the network and the sources are scaled back, exactly as
the Demucs command line does, with no peak normalisation.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from .audio import AudioSignal
from .errors import MirflowError

#: ROCm/HIP settings the old tool needed on 16 GB AMD cards; defaults the user's environment overrides.
GPU_ENV_DEFAULTS = {
    "PYTORCH_ALLOC_CONF": "garbage_collection_threshold:0.8,max_split_size_mb:512",
    "HIP_FORCE_DEV_KERNARG": "1",
}
DEFAULT_PARAMS = {"model": "htdemucs_ft", "device": "auto", "shifts": 1, "overlap": 0.25, "segment_s": None,
                  "oom_retry_segment_s": 4.0, "format": "flac", "mp3_vbr_quality": 0.6}


class SeparationError(MirflowError):
    """Separation failed (GPU out of memory twice, bad checkpoint...)."""


def apply_gpu_env_defaults(environ=os.environ) -> dict[str, str]:
    """Set the ROCm/CUDA allocator defaults unless the user set them; call before importing torch."""
    applied = {}
    for key, value in GPU_ENV_DEFAULTS.items():
        if key not in environ:
            environ[key] = value
            applied[key] = value
    return applied


def pick_device(requested: str = "auto", setting: str = "separation.device") -> str:
    """``"cuda"`` when a CUDA or ROCm GPU is usable and requested/auto, else ``"cpu"``.

    ROCm builds of torch expose AMD GPUs through ``torch.cuda`` too. ``setting``
    names the config key for the error message.
    """
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise MirflowError(f"{setting} is '{requested}' but torch sees no GPU.",
                           f"set {setting}: auto (or cpu), or install a CUDA/ROCm build of torch.")
    return requested


def bag_definition(model_name: str) -> dict:
    """The bag Demucs defines for a model name: signatures, weights, segment."""
    import yaml
    from demucs.pretrained import REMOTE_ROOT

    path = Path(REMOTE_ROOT) / f"{model_name}.yaml"
    if not path.is_file():
        raise SeparationError(f"Demucs has no model named '{model_name}'.",
                              "use htdemucs or htdemucs_ft (separation.model in the config).")
    return yaml.safe_load(path.read_text())


def load_separator(model_name: str, checkpoint_files: list[str], device: str):
    """Load the model (or bag of models) from verified checkpoint files.

    Parameters
    ----------
    model_name : str
        Demucs model name (``htdemucs``, ``htdemucs_ft``...).
    checkpoint_files : list of str
        Paths of the ``<signature>-<sha prefix>.th`` files of the model.
    device : str
        ``"cpu"`` or ``"cuda"``.
    """
    from demucs.apply import BagOfModels
    from demucs.states import load_model

    bag = bag_definition(model_name)
    by_sig = {Path(f).name.split("-", 1)[0]: f for f in checkpoint_files}
    missing = [sig for sig in bag["models"] if sig not in by_sig]
    if missing:
        raise SeparationError(f"checkpoints {missing} of Demucs model {model_name} are missing.",
                              "run `make models` or place the files listed in models/manifest.yaml.")
    models = [load_model(by_sig[sig]) for sig in bag["models"]]
    separator = BagOfModels(models, bag.get("weights"), bag.get("segment"))
    return separator.to(device).eval()


def _is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def separate(separator, signal: AudioSignal, params: dict, device: str) -> tuple[dict[str, np.ndarray], int, dict]:
    """Separate a signal into the model's sources.

    Returns
    -------
    stems : dict
        source name -> float32 array (channels, frames) at the model's sample rate.
    sample_rate : int
        The model's sample rate (44100 for Demucs v4).
    meta : dict
        What was done: resampling, channel mapping, segment used, OOM retries, timings.

    Raises
    ------
    SeparationError
        When the GPU runs out of memory even with the smaller retry segment.
    """
    import torch
    from demucs.apply import apply_model

    p = {**DEFAULT_PARAMS, **params}
    meta = {"device": device, "model_samplerate": separator.samplerate, "input_samplerate": signal.sample_rate,
            "input_channels": signal.channels, "oom_retries": 0}
    wav = torch.from_numpy(signal.samples.astype(np.float32))
    if signal.sample_rate != separator.samplerate:
        import julius

        wav = julius.resample_frac(wav, signal.sample_rate, separator.samplerate)
        meta["resampled"] = f"{signal.sample_rate} -> {separator.samplerate} Hz (julius)"
    if wav.shape[0] == 1 and separator.audio_channels == 2:
        wav = wav.repeat(2, 1)
        meta["channels"] = "mono duplicated to stereo"
    elif wav.shape[0] > separator.audio_channels:
        wav = wav[: separator.audio_channels]
        meta["channels"] = f"kept the first {separator.audio_channels} channels"
    ref = wav.mean(0)
    mean, std = ref.mean(), ref.std()
    if float(std) == 0.0:
        std = torch.tensor(1.0)
    mix = ((wav - mean) / std)[None]
    segment = p["segment_s"]
    started = time.perf_counter()
    for attempt in range(2):
        try:
            with torch.no_grad():
                out = apply_model(separator, mix, shifts=int(p["shifts"]), split=True, overlap=float(p["overlap"]),
                                  device=device, segment=segment, progress=False)
            break
        except (RuntimeError, torch.cuda.OutOfMemoryError) as err:
            if device == "cpu" or not _is_oom(err):
                raise
            torch.cuda.empty_cache()
            if attempt == 1:
                raise SeparationError(
                    f"GPU out of memory during separation, also with segment={segment} s.",
                    "lower separation.oom_retry_segment_s or separation.segment_s, use model htdemucs, "
                    "or free GPU memory (other jobs).") from err
            meta["oom_retries"] += 1
            segment = float(p["oom_retry_segment_s"])
    meta["segment_s"] = segment
    meta["separation_s"] = round(time.perf_counter() - started, 3)
    stems = (out[0] * std + mean).cpu().numpy().astype(np.float32)
    return {name: stems[i] for i, name in enumerate(separator.sources)}, int(separator.samplerate), meta


def write_stem(path: str, samples: np.ndarray, sample_rate: int, params: dict) -> dict:
    """Write one stem atomically (FLAC 24-bit, or MP3 VBR); returns facts incl. clipped-sample count.

    Levels are never normalised. FLAC is integer PCM, so samples beyond full scale
    are clipped by the encoder: the count is returned so the caller can record it.
    """
    import soundfile as sf

    p = {**DEFAULT_PARAMS, **params}
    from .jsonio import atomic_path

    clipped = int(np.count_nonzero(np.abs(samples) > 1.0))
    with atomic_path(path) as tmp:
        if p["format"] == "mp3":
            sf.write(tmp, samples.T, sample_rate, format="MP3", subtype="MPEG_LAYER_III",
                     compression_level=float(p["mp3_vbr_quality"]), bitrate_mode="VARIABLE")
        else:
            sf.write(tmp, samples.T, sample_rate, format="FLAC", subtype="PCM_24")
    return {"path": str(path), "peak": round(float(np.max(np.abs(samples))), 6), "clipped_samples": clipped}
