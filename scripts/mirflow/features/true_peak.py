"""Maximum true-peak level, ITU-R BS.1770-4 Annex 2 (dBTP).

A sample-peak meter misses the peaks of the reconstructed waveform that fall
between samples; a signal whose samples stay below full scale can still clip a
DAC or a lossy encoder. Annex 2 estimates the waveform's peak by oversampling
to at least 192 kHz with its published 48-tap, 4-phase interpolation filter and
taking the largest absolute value. Floating-point input needs none of the
Annex's fixed-point attenuation stages (-12.04 dB / +12.04 dB).

Checked against the EBU Tech 3341 true-peak cases 15-23 (expected values with
the tolerance +0.2/-0.4 dB) in ``tests/test_true_peak.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import AudioSignal
from ..result import FeatureResult
from . import pair

#: BS.1770-4 Annex 2, Table 1: the interpolation filter, one row per phase (phase p is the point p/4 of a
#: sample period after the centre tap). Rows 2 and 3 are rows 1 and 0 reversed: the filter is symmetric.
ANNEX2_PHASES = np.array([
    [0.0017089843750, 0.0109863281250, -0.0196533203125, 0.0332031250000, -0.0594482421875, 0.1373291015625,
     0.9721679687500, -0.1022949218750, 0.0476074218750, -0.0266113281250, 0.0148925781250, -0.0083007812500],
    [-0.0291748046875, 0.0292968750000, -0.0517578125000, 0.0891113281250, -0.1665039062500, 0.4650878906250,
     0.7797851562500, -0.2003173828125, 0.1015625000000, -0.0582275390625, 0.0330810546875, -0.0189208984375],
    [-0.0189208984375, 0.0330810546875, -0.0582275390625, 0.1015625000000, -0.2003173828125, 0.7797851562500,
     0.4650878906250, -0.1665039062500, 0.0891113281250, -0.0517578125000, 0.0292968750000, -0.0291748046875],
    [-0.0083007812500, 0.0148925781250, -0.0266113281250, 0.0476074218750, -0.1022949218750, 0.9721679687500,
     0.1373291015625, -0.0594482421875, 0.0332031250000, -0.0196533203125, 0.0109863281250, 0.0017089843750],
])

#: The rate Annex 2 oversamples to: at or above it the samples themselves are dense enough.
TARGET_RATE_HZ = 192000


@dataclass(frozen=True)
class TruePeakParams:
    """Parameters of ``true_peak`` and ``true_peak_stems`` (config section ``true_peak``): none. BS.1770-4
    Annex 2 fixes the interpolation filter and the oversampling ratio, so the section accepts no keys."""


def oversampling_factor(*, sample_rate: int) -> int:
    """Oversampling ratio that brings ``sample_rate`` (Hz) to about 192 kHz: 4 below 96 kHz, 2 up to 192 kHz,
    1 from 192 kHz on (BS.1770-4 Annex 2, section 2)."""
    if sample_rate <= 0:
        raise ValueError(f"sample rate must be positive, got {sample_rate}")
    if sample_rate < TARGET_RATE_HZ // 2:
        return 4
    if sample_rate < TARGET_RATE_HZ:
        return 2
    return 1


def true_peak_linear(*, samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Maximum true-peak level of each channel, linear (1.0 = full scale).

    Parameters
    ----------
    samples : np.ndarray
        Audio, shape (channels, frames) or (frames,), full scale = 1.0.
    sample_rate : int
        Hz.

    Returns
    -------
    np.ndarray
        Shape (channels,): the largest absolute value of the samples and of the
        oversampled signal, linear amplitude. 0 for an empty signal. Inter-sample
        values are estimated where the filter's 12 taps lie inside the signal
        (all but the first and last 11 sample periods).
    """
    x = np.atleast_2d(np.asarray(samples, dtype=np.float64))
    factor = oversampling_factor(sample_rate=sample_rate)
    # 2x uses every other phase of the 4x filter: the points 0 and 1/2 of a sample period.
    phases = ANNEX2_PHASES[:: 4 // factor] if factor > 1 else ANNEX2_PHASES[:0]
    peaks = np.zeros(x.shape[0])
    for ch, channel in enumerate(x):
        if channel.size == 0:
            continue
        peak = float(np.max(np.abs(channel)))
        for taps in phases:
            # Only where the 12 taps lie inside the signal: at the edges a zero history would read the jump from
            # silence as an overshoot (0.7 dB on Tech 3341 case 18), and the sample peak still covers them.
            interpolated = np.convolve(channel, taps, mode="valid")
            if interpolated.size:
                peak = max(peak, float(np.max(np.abs(interpolated))))
        peaks[ch] = peak
    return peaks


def true_peak_dbtp(*, samples: np.ndarray, sample_rate: int) -> float | None:
    """Maximum true-peak level over all channels, dBTP (dB relative to full scale, true peak).

    Parameters
    ----------
    samples : np.ndarray
        Audio, shape (channels, frames) or (frames,), full scale = 1.0.
    sample_rate : int
        Hz.

    Returns
    -------
    float or None
        dBTP; None for digital silence or an empty signal (the level is minus
        infinity, which JSON cannot hold: the caller records the key as absent).
    """
    peak = float(np.max(true_peak_linear(samples=samples, sample_rate=sample_rate), initial=0.0))
    if peak <= 0.0:
        return None
    return 20.0 * np.log10(peak)


def compute_true_peak(signal: AudioSignal, params: TruePeakParams = TruePeakParams()) -> FeatureResult:
    """``true_peak_dbtp`` of one signal (the caller adds stem suffixes): the maximum true-peak level over its
    channels, dBTP, rounded to 0.001 dB; absent with reason "silent" for digital silence."""
    result = FeatureResult(meta={"channels": signal.channels, "sample_rate": signal.sample_rate,
                                 "oversampling": oversampling_factor(sample_rate=signal.sample_rate),
                                 "filter": "ITU-R BS.1770-4 Annex 2 (48 taps, 4 phases)"})
    level = None if signal.is_digital_silence() else true_peak_dbtp(samples=signal.samples,
                                                                     sample_rate=signal.sample_rate)
    if level is None:
        result.mark_absent("true_peak_dbtp", "silent")
    else:
        result.set("true_peak_dbtp", round(float(level), 3))
    return result


FAMILIES = pair(name="true_peak", version=1, compute="mirflow.features.true_peak:compute_true_peak",
                libraries=("numpy",), description="Maximum true-peak level (ITU-R BS.1770-4 Annex 2, dBTP)",
                params=TruePeakParams)
