"""Meta Audiobox Aesthetics: four 1-10 ratings of a recording, from the ``all_axes`` checkpoint.

The model (Tjandra et al. 2025, arXiv:2502.05139; package ``audiobox-aesthetics``)
is a WavLM-base encoder whose layers are mixed with learnt weights per axis,
masked-mean pooled over time, L2-normalised and fed to one small MLP per axis:

* ``content_enjoyment`` (CE), ``content_usefulness`` (CU),
  ``production_complexity`` (PC), ``production_quality`` (PQ).

This module reproduces the package's own predictor
(``audiobox_aesthetics.infer.AesPredictor.forward``) without importing
``audiobox_aesthetics.infer``, which needs torchaudio:

1. mono downmix (channel mean), resampled to 16 kHz with a windowed-sinc
   resampler numerically equal to ``torchaudio.functional.resample`` with its
   defaults (Hann window, 6 zero crossings, roll-off 0.99);
2. 10 s windows every 10 s from the start; the last one zero-padded to 10 s,
   with a padding mask marking the real samples;
3. the model on all windows (in batches of ``batch_windows``), each axis
   de-normalised with the checkpoint's ``target_transform``
   (``prediction * std + mean``);
4. per axis, the mean over windows weighted by each window's real length / 10 s.

Values are the model's scale (about 1 to 10), not clamped. The checkpoint is
loaded exactly as ``AesPredictor.setup_model`` does: ``torch.load``, the
``model.`` prefix stripped from the state-dict keys, ``AesMultiOutput`` built
from the checkpoint's ``model_cfg`` and ``target_transform``. A missing or
unusable checkpoint raises; nothing is ever substituted for a prediction.
"""
from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .audio import AudioSignal
from .errors import MirflowError
from .models import sha256_file as _sha256  # one checksum routine for every model file
from .params import DEVICE_PATTERN, param
from .result import FeatureResult

#: Sample rate of the model (Hz): ``AesPredictor.sample_rate``.
MODEL_SAMPLE_RATE = 16000
#: Window length and hop (s) that ``AesPredictor.forward`` passes to ``make_inference_batch``.
WINDOW_S = 10
HOP_S = 10
#: Package axis name -> output key.
AXES = {"CE": "content_enjoyment", "CU": "content_usefulness", "PC": "production_complexity",
        "PQ": "production_quality"}
#: ``model_cfg`` entries ``AesPredictor.setup_model`` passes to ``AesMultiOutput``.
MODEL_CFG_KEYS = ("proj_num_layer", "proj_ln", "proj_act_fn", "proj_dropout", "nth_layer", "use_weighted_layer_sum",
                  "precision", "normalize_embed", "output_dim")


@dataclass(frozen=True)
class AestheticsParams:
    """Parameters of ``aesthetics`` (config section ``aesthetics``)."""

    device: str = param("auto", pattern=DEVICE_PATTERN,
                        doc="Torch device: auto (a CUDA/ROCm GPU when torch sees one, else CPU), cpu, cuda, cuda:N")
    batch_windows: int = param(16, minimum=1,
                               doc="10 s windows per forward pass (GPU memory grows with it; results do not change)")
    min_duration_s: float = param(1.0, unit="s", minimum=0.0, doc="Shorter input leaves the four keys absent")
    decimals: int | None = param(4, minimum=0, nullable=True,
                                 doc="Decimal places written (null: the model's float32 value as is)")



class AestheticsError(MirflowError):
    """The Audiobox Aesthetics checkpoint is missing or unusable, or the device is wrong."""


@dataclass
class AestheticsModel:
    """The loaded model and what ``_meta`` needs to say about it."""

    model: Any = field(repr=False)
    target_transform: dict[str, tuple[float, float]]
    device: str
    checkpoint_sha256: str
    model_cfg: dict
    load_s: float


def pick_device(requested: str = "auto") -> str:
    """``"cuda"`` when requested or auto and a CUDA/ROCm GPU is usable, else ``"cpu"``."""
    from .separation import pick_device as _pick

    return _pick(requested, "aesthetics.device")


def load_aesthetics_model(checkpoint_path: str, device: str = "auto") -> AestheticsModel:
    """Load the ``all_axes`` checkpoint (``checkpoint.pt``) once.

    Parameters
    ----------
    checkpoint_path : str
        Verified path of the checkpoint (a dict with ``state_dict``,
        ``model_cfg`` and ``target_transform``, as the package's loader reads it).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda[:n]"``.

    Raises
    ------
    AestheticsError
        Missing file, or a file that is not an Audiobox Aesthetics checkpoint.
    """
    import torch
    from audiobox_aesthetics.model.aes import AesMultiOutput

    if not os.path.isfile(checkpoint_path):
        raise AestheticsError(f"Audiobox Aesthetics checkpoint {checkpoint_path} does not exist.",
                              "run `make models` (or place checkpoint.pt as models/manifest.yaml says).")
    started = time.perf_counter()
    dev = pick_device(device)
    with open(checkpoint_path, "rb") as handle:
        ckpt = torch.load(handle, map_location=dev)
    missing = [k for k in ("state_dict", "model_cfg", "target_transform")
               if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise AestheticsError(f"{checkpoint_path} is not an Audiobox Aesthetics checkpoint (missing {missing}).",
                              "fetch checkpoint.pt again (make models).")
    # Same renaming as AesPredictor.setup_model (its pattern's "." matches any character).
    state = {re.sub("^model.", "", k): v for k, v in ckpt["state_dict"].items()}
    cfg = {k: ckpt["model_cfg"][k] for k in MODEL_CFG_KEYS}
    model = AesMultiOutput(**cfg, target_transform=ckpt["target_transform"])
    model.load_state_dict(state)
    model.to(dev)
    model.eval()
    transform = {axis: (float(model.target_transform[axis]["mean"]), float(model.target_transform[axis]["std"]))
                 for axis in AXES}
    return AestheticsModel(model, transform, dev, _sha256(checkpoint_path),
                           {k: (str(v) if not isinstance(v, (bool, int, float, str)) else v) for k, v in cfg.items()},
                           time.perf_counter() - started)


# ---------------------------------------------------------------- preprocessing

def sinc_resample(wave, orig_sr: int, new_sr: int, zero_crossings: int = 6, rolloff: float = 0.99):
    """Band-limited resampling, numerically equal to ``torchaudio.functional.resample`` (sinc_interp_hann).

    The rates are reduced by their gcd to ``orig``/``new``; output sample ``j``
    is the input convolved with a Hann-windowed sinc low-pass at
    ``rolloff * min(orig, new)`` (in reduced units) evaluated at ``j / new``,
    truncated after ``zero_crossings`` zero crossings. Because the filter phase
    repeats every ``new`` outputs, one kernel per phase is applied with a
    strided convolution. Arithmetic is in the waveform's dtype.

    Parameters
    ----------
    wave : torch.Tensor
        (..., time) floating-point waveform.
    orig_sr, new_sr : int
        Sample rates (Hz).

    Returns
    -------
    torch.Tensor
        (..., ceil(time * new_sr / orig_sr)) waveform at ``new_sr``.
    """
    import torch

    if orig_sr == new_sr:
        return wave
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // g, int(new_sr) // g
    cutoff = min(orig, new) * rolloff
    half = math.ceil(zero_crossings * orig / cutoff)
    dtype, device = wave.dtype, wave.device
    taps = torch.arange(-half, half + orig, dtype=dtype, device=device)[None, None] / orig
    phases = torch.arange(0, -new, -1, dtype=dtype, device=device)[:, None, None] / new
    t = ((phases + taps) * cutoff).clamp_(-zero_crossings, zero_crossings)
    window = torch.cos(t * math.pi / zero_crossings / 2) ** 2
    t = t * math.pi
    kernels = torch.where(t == 0, torch.tensor(1.0, dtype=dtype, device=device), t.sin() / t)
    kernels = kernels * (window * (cutoff / orig))

    shape = wave.shape
    flat = wave.reshape(-1, shape[-1])
    length = flat.shape[-1]
    padded = torch.nn.functional.pad(flat, (half, half + orig))
    out = torch.nn.functional.conv1d(padded[:, None], kernels, stride=orig)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)
    out = out[..., : math.ceil(new * length / orig)]
    return out.reshape(*shape[:-1], out.shape[-1])


def model_input(signal: AudioSignal):
    """The 16 kHz mono waveform the model sees: torch float32 (1, frames)."""
    import torch

    wave = torch.from_numpy(np.ascontiguousarray(signal.samples, dtype=np.float32))
    # Downmix in float32 with torch, as the package's read_wav does on the decoded file.
    mono = wave.mean(0, keepdim=True) if wave.shape[0] > 1 else wave
    return sinc_resample(mono, signal.sample_rate, MODEL_SAMPLE_RATE)


def windows(wave, window: int = WINDOW_S * MODEL_SAMPLE_RATE, hop: int = HOP_S * MODEL_SAMPLE_RATE):
    """Cut a (1, T) waveform into zero-padded windows.

    Returns
    -------
    wavs : torch.Tensor
        (N, 1, window) windows starting at 0, hop, 2*hop... while start < T.
    masks : torch.Tensor
        (N, 1, window) bool, True on real (not padded) samples.
    weights : torch.Tensor
        (N,) float32, real samples / window.
    """
    import torch

    total = wave.shape[-1]
    starts = list(range(0, total, hop))
    wavs = torch.zeros((len(starts), 1, window), dtype=wave.dtype, device=wave.device)
    masks = torch.zeros((len(starts), 1, window), dtype=torch.bool, device=wave.device)
    lengths = []
    for i, start in enumerate(starts):
        piece = wave[..., start:start + window]
        n = piece.shape[-1]
        wavs[i, :, :n] = piece
        masks[i, :, :n] = True
        lengths.append(n / window)
    return wavs, masks, torch.tensor(lengths, dtype=torch.float32, device=wave.device)


def predict_axes(loaded: AestheticsModel, wave, batch_windows: int) -> tuple[dict[str, float], int]:
    """Weighted per-axis ratings of a 16 kHz (1, T) waveform.

    Returns
    -------
    ratings : dict
        Package axis name (CE, CU, PC, PQ) -> rating (float32 value as float).
    n_windows : int
        Number of 10 s windows.
    """
    import torch

    wavs, masks, weights = windows(wave.to(loaded.device))
    per_axis: dict[str, list] = {axis: [] for axis in AXES}
    step = max(1, int(batch_windows))
    with torch.inference_mode():
        for start in range(0, len(wavs), step):
            out = loaded.model({"wav": wavs[start:start + step], "mask": masks[start:start + step]})
            for axis in AXES:
                mean, std = loaded.target_transform[axis]
                per_axis[axis].append(out[axis] * std + mean)
    ratings = {}
    for axis in AXES:
        preds = torch.cat(per_axis[axis])
        ratings[axis] = float(((preds * weights).sum() / weights.sum()).item())
    return ratings, len(wavs)


def predict_aesthetics(loaded: AestheticsModel, signal: AudioSignal,
                       params: AestheticsParams = AestheticsParams()) -> FeatureResult:
    """The four Audiobox Aesthetics ratings of one signal.

    Parameters
    ----------
    loaded : AestheticsModel
        From :func:`load_aesthetics_model` (load once per job).
    signal : AudioSignal
        Any sample rate and channel count.
    params : AestheticsParams, optional
        Batching, minimum duration and rounding (``device`` is used at load time, :func:`load_aesthetics_model`).

    Returns
    -------
    FeatureResult
        ``content_enjoyment``, ``content_usefulness``, ``production_complexity``,
        ``production_quality`` on the model's 1-10 scale (not clamped); absent
        "silent" for digital silence, "too short" below ``min_duration_s``.

    Raises
    ------
    AestheticsError
        When the model returns a non-finite rating.
    """
    p = params
    result = FeatureResult()
    result.meta.update({"checkpoint_sha256": loaded.checkpoint_sha256, "device": loaded.device,
                        "model_cfg": loaded.model_cfg, "load_s": round(loaded.load_s, 3),
                        "target_transform": {AXES[a]: {"mean": m, "std": s}
                                             for a, (m, s) in loaded.target_transform.items()}})
    if signal.is_digital_silence():
        result.mark_all_absent(AXES.values(), "silent")
        return result
    if signal.duration_s < p.min_duration_s:
        result.mark_all_absent(AXES.values(), f"too short ({signal.duration_s:.3f} s < {p.min_duration_s} s)")
        return result
    started = time.perf_counter()
    wave = model_input(signal)
    ratings, n_windows = predict_axes(loaded, wave, p.batch_windows)
    for axis, value in ratings.items():
        if not math.isfinite(value):
            raise AestheticsError(f"Audiobox Aesthetics returned {value} for {AXES[axis]}.",
                                  "the checkpoint may be damaged; fetch it again (make models).")
        result.set(AXES[axis], round(value, p.decimals) if p.decimals is not None else value)
    result.meta.update({
        "model_input": (f"mono downmix, {signal.sample_rate} -> {MODEL_SAMPLE_RATE} Hz (windowed sinc, "
                        "= torchaudio.functional.resample defaults)" if signal.sample_rate != MODEL_SAMPLE_RATE
                        else f"mono downmix at {MODEL_SAMPLE_RATE} Hz"),
        "windows": n_windows, "window_s": WINDOW_S, "hop_s": HOP_S,
        "reduction": "per axis: prediction * std + mean, then mean over windows weighted by real length / 10 s",
        "inference_s": round(time.perf_counter() - started, 3),
    })
    return result
