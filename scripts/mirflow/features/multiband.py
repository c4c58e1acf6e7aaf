"""RMS level in four frequency bands (bass, body, mid, air)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import AudioSignal
from ..params import as_dict, param, section
from ..result import FeatureResult
from . import pair


def _band(low_hz: float, high_hz: float, name: str) -> tuple[float, float]:
    return param((low_hz, high_hz), unit="Hz", above=0.0, length=2, doc=f"Edges [low, high] of the {name} band")


@dataclass(frozen=True)
class BandsHz:
    """Edges of the four bands (``rms_energy_<band>``), each ``[low, high]`` in Hz."""

    bass: tuple[float, float] = _band(20.0, 120.0, "bass")
    body: tuple[float, float] = _band(120.0, 600.0, "body")
    mid: tuple[float, float] = _band(600.0, 2500.0, "mid")
    air: tuple[float, float] = _band(2500.0, 22000.0, "air")


@dataclass(frozen=True)
class MultibandParams:
    """Parameters of ``multiband_rms`` and ``multiband_rms_stems`` (config section ``multiband_rms``)."""

    bands_hz: BandsHz = section(BandsHz(), doc="Band edges")
    order: int = param(5, minimum=1, maximum=12, doc="Butterworth prototype order (the band-pass has twice the poles)")
    floor_db: float = param(-60.0, unit="dBFS", maximum=0.0, doc="Lowest reported level (a quieter band reports this)")
    max_edge_fraction_of_nyquist: float = param(0.999, above=0.0, below=1.0,
                                                doc="Upper band edges are capped at this share of Nyquist")


def band_rms_db(mono: np.ndarray, sample_rate: int, low_hz: float, high_hz: float, order: int) -> float:
    """RMS level in dBFS (20 log10 RMS) of a Butterworth band-passed signal.

    Parameters
    ----------
    mono : np.ndarray
        Mono signal, full scale 1.0.
    sample_rate : int
        Hz.
    low_hz, high_hz : float
        Band edges (-3 dB points), Hz; ``high_hz`` must be below Nyquist.
    order : int
        Butterworth prototype order (the band-pass has twice as many poles).

    Returns
    -------
    float
        dBFS; -inf for a zero output.
    """
    from scipy import signal as sps  # lazy: the registry imports this module at workflow parse time

    sos = sps.butter(order, [low_hz, high_hz], btype="bandpass", fs=sample_rate, output="sos")
    filtered = sps.sosfilt(sos, mono.astype(np.float64))
    rms = np.sqrt(np.mean(filtered * filtered))
    with np.errstate(divide="ignore"):
        return float(20.0 * np.log10(rms))


def compute_multiband_rms(signal: AudioSignal, params: MultibandParams = MultibandParams()) -> FeatureResult:
    """``rms_energy_<band>`` for each configured band of one signal."""
    p = params
    nyquist = signal.sample_rate / 2.0
    cap = p.max_edge_fraction_of_nyquist * nyquist
    result = FeatureResult(meta={"order": p.order, "floor_db": p.floor_db, "filter": "causal sosfilt",
                                 "downmix": "mean of channels", "bands_hz": {}, "at_floor": []})
    silent = signal.is_digital_silence()
    mono = signal.mono()
    for band, (low, high) in as_dict(p.bands_hz).items():
        key = f"rms_energy_{band}"
        high_eff = min(float(high), cap)
        if low >= high_eff:
            result.mark_absent(key, f"sample rate {signal.sample_rate} Hz too low for a band starting at {low} Hz")
            continue
        result.meta["bands_hz"][band] = [float(low), round(high_eff, 3)]
        if silent:
            result.mark_absent(key, "silent")
            continue
        level = band_rms_db(mono, signal.sample_rate, float(low), high_eff, p.order)
        if level < p.floor_db:
            result.meta["at_floor"].append(key)
            level = p.floor_db
        result.set(key, round(level, 3))
    return result


FAMILIES = pair(name="multiband_rms", version=1, compute="mirflow.features.multiband:compute_multiband_rms",
                libraries=("numpy", "scipy"), description="RMS level in four Butterworth bands", params=MultibandParams)
