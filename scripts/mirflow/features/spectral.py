"""Frame-wise spectral shape descriptors summarised by their median.

Frames follow the Essentia chain the old tool used (so values stay comparable):
mono downmix, 2048-sample periodic Hann window scaled to sum 2 (Essentia's
``Windowing(normalized=True)``: a full-scale sine peaks at magnitude 1.0),
hop 512, frames starting at sample 0 with no padding, magnitude spectrum.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import AudioSignal
from ..params import param
from ..result import FeatureResult
from . import pair


@dataclass(frozen=True)
class SpectralParams:
    """Parameters of ``spectral`` and ``spectral_stems`` (config section ``spectral``)."""

    frame_length: int = param(2048, unit="samples", minimum=64, doc="FFT frame length")
    hop_length: int = param(512, unit="samples", minimum=1, doc="Hop between frames")
    window: str = param("hann", choices=("hann", "hamming", "blackmanharris"), doc="Window (periodic, scipy name)")


KEYS = ("spectral_flatness", "spectral_flux", "spectral_skewness", "spectral_kurtosis")
#: Frames per FFT batch: bounds memory to about 50 MB regardless of track length.
_BATCH = 2048


def magnitude_frames(mono: np.ndarray, frame_length: int, hop_length: int, window: str = "hann"):
    """Yield batches of magnitude spectra, shape (n_frames, frame_length // 2 + 1).

    Parameters
    ----------
    mono : np.ndarray
        Mono signal, full scale 1.0.
    frame_length, hop_length : int
        Samples.
    window : str
        scipy window name (periodic).
    """
    from scipy.signal import get_window  # lazy: the registry imports this module at workflow parse time

    win = get_window(window, frame_length, fftbins=True).astype(np.float64)
    win *= 2.0 / win.sum()
    n_frames = 1 + (len(mono) - frame_length) // hop_length if len(mono) >= frame_length else 0
    frames = np.lib.stride_tricks.sliding_window_view(mono, frame_length)[::hop_length][:n_frames]
    for start in range(0, n_frames, _BATCH):
        yield np.abs(np.fft.rfft(frames[start:start + _BATCH] * win, axis=1))


def flatness(mag: np.ndarray) -> np.ndarray:
    """Geometric over arithmetic mean per frame; 0 for frames containing an exactly-zero bin.

    Parameters
    ----------
    mag : np.ndarray
        Magnitude spectra, shape (frames, bins), non-negative, no all-zero rows.
    """
    has_zero = (mag <= 0).any(axis=1)
    with np.errstate(divide="ignore"):
        log_mean = np.log(np.where(mag > 0, mag, 1.0)).mean(axis=1)
    out = np.exp(log_mean) / mag.mean(axis=1)
    out[has_zero] = 0.0
    return out


def shape_moments(mag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Skewness and excess kurtosis of each spectrum as a distribution over bin index.

    Frames whose spectrum has zero spread (all energy in one bin) get skewness 0
    and excess kurtosis -3, the limits of a point mass, as Essentia's
    DistributionShape does.
    """
    bins = np.arange(mag.shape[1], dtype=np.float64)
    weights = mag / mag.sum(axis=1, keepdims=True)
    mean = weights @ bins
    centred = bins[None, :] - mean[:, None]
    m2 = (weights * centred**2).sum(axis=1)
    m3 = (weights * centred**3).sum(axis=1)
    m4 = (weights * centred**4).sum(axis=1)
    spread = m2 > 1e-12
    skew = np.zeros_like(m2)
    kurt = np.full_like(m2, -3.0)
    skew[spread] = m3[spread] / m2[spread] ** 1.5
    kurt[spread] = m4[spread] / m2[spread] ** 2 - 3.0
    return skew, kurt


def compute_spectral(signal: AudioSignal, params: SpectralParams = SpectralParams()) -> FeatureResult:
    """Median spectral flatness, flux, skewness and kurtosis of one signal."""
    p = params
    result = FeatureResult(meta={"frame_length": p.frame_length, "hop_length": p.hop_length,
                                 "window": p.window, "downmix": "mean of channels"})
    mono = signal.mono().astype(np.float64)
    if signal.is_digital_silence():
        result.mark_all_absent(KEYS, "silent")
        return result
    if len(mono) < p.frame_length:
        result.mark_all_absent(KEYS, f"too short (< {p.frame_length} samples)")
        return result
    flat, skew, kurt, flux = [], [], [], []
    previous = None
    for mag in magnitude_frames(mono, p.frame_length, p.hop_length, p.window):
        stacked = mag if previous is None else np.vstack([previous[None, :], mag])
        flux.append(np.linalg.norm(np.diff(stacked, axis=0), axis=1))
        previous = mag[-1]
        audible = mag.sum(axis=1) > 0
        if audible.any():
            flat.append(flatness(mag[audible]))
            s, k = shape_moments(mag[audible])
            skew.append(s)
            kurt.append(k)
    flux_all = np.concatenate(flux)
    result.meta["frames"] = int(sum(len(f) for f in flat))
    result.set("spectral_flatness", float(np.median(np.concatenate(flat))))
    result.set("spectral_skewness", float(np.median(np.concatenate(skew))))
    result.set("spectral_kurtosis", float(np.median(np.concatenate(kurt))))
    if flux_all.size:
        result.set("spectral_flux", float(np.median(flux_all)))
    else:
        result.mark_absent("spectral_flux", "too short (needs two frames)")
    return result


FAMILIES = pair(name="spectral", version=1, compute="mirflow.features.spectral:compute_spectral",
                libraries=("numpy", "scipy"),
                description="Spectral flatness, flux, skewness and kurtosis (frame medians)", params=SpectralParams)
