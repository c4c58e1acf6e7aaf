"""RMS level in four frequency bands (bass, body, mid, air)."""
from __future__ import annotations

import numpy as np
from scipy import signal as sps

from ..audio import AudioSignal
from ..result import FeatureResult

DEFAULT_PARAMS = {
    "bands_hz": {"bass": [20.0, 120.0], "body": [120.0, 600.0], "mid": [600.0, 2500.0], "air": [2500.0, 22000.0]},
    "order": 5,
    "floor_db": -60.0,
    "max_edge_fraction_of_nyquist": 0.999,
}


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
    sos = sps.butter(order, [low_hz, high_hz], btype="bandpass", fs=sample_rate, output="sos")
    filtered = sps.sosfilt(sos, mono.astype(np.float64))
    rms = np.sqrt(np.mean(filtered * filtered))
    with np.errstate(divide="ignore"):
        return float(20.0 * np.log10(rms))


def compute_multiband_rms(signal: AudioSignal, params: dict) -> FeatureResult:
    """``rms_energy_<band>`` for each configured band of one signal."""
    p = {**DEFAULT_PARAMS, **params}
    nyquist = signal.sample_rate / 2.0
    cap = p["max_edge_fraction_of_nyquist"] * nyquist
    result = FeatureResult(meta={"order": p["order"], "floor_db": p["floor_db"], "filter": "causal sosfilt",
                                 "downmix": "mean of channels", "bands_hz": {}, "at_floor": []})
    silent = signal.is_digital_silence()
    mono = signal.mono()
    for band, (low, high) in p["bands_hz"].items():
        key = f"rms_energy_{band}"
        high_eff = min(float(high), cap)
        if low >= high_eff:
            result.mark_absent(key, f"sample rate {signal.sample_rate} Hz too low for a band starting at {low} Hz")
            continue
        result.meta["bands_hz"][band] = [float(low), round(high_eff, 3)]
        if silent:
            result.mark_absent(key, "silent")
            continue
        level = band_rms_db(mono, signal.sample_rate, float(low), high_eff, int(p["order"]))
        if level < p["floor_db"]:
            result.meta["at_floor"].append(key)
            level = float(p["floor_db"])
        result.set(key, round(level, 3))
    return result
