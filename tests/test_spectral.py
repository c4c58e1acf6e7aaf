"""Spectral descriptors on signals whose answers are known analytically."""
import numpy as np
import pytest
from scipy import signal as sps

from conftest import as_signal, sine
from mirflow.features.spectral import compute_spectral

FS = 44100
# Per-bin magnitudes of white noise are Rayleigh distributed: geometric/arithmetic mean
# = exp((ln 2 - euler_gamma) / 2) / sqrt(pi / 2).
RAYLEIGH_FLATNESS = np.exp((np.log(2) - np.euler_gamma) / 2) / np.sqrt(np.pi / 2)


def _noise(seconds=5, seed=0):
    return np.random.default_rng(seed).standard_normal(int(FS * seconds)).astype(np.float32) * 0.1


def test_white_noise_flatness_matches_rayleigh_theory():
    r = compute_spectral(as_signal(_noise(), FS))
    assert r.values["spectral_flatness"] == pytest.approx(RAYLEIGH_FLATNESS, abs=0.02)
    assert RAYLEIGH_FLATNESS == pytest.approx(0.8455, abs=1e-3)


def test_pure_sine_flatness_near_zero_and_flux_near_zero():
    r = compute_spectral(as_signal(sine(1000, 5, FS, -6, channels=1), FS))
    assert r.values["spectral_flatness"] < 0.05
    assert r.values["spectral_flux"] < 1e-3


def test_skewness_sign_follows_spectral_weighting():
    noise = _noise()
    low = sps.sosfilt(sps.butter(4, 500, "lowpass", fs=FS, output="sos"), noise)
    high = sps.sosfilt(sps.butter(4, 15000, "highpass", fs=FS, output="sos"), noise)
    low_r = compute_spectral(as_signal(low, FS))
    high_r = compute_spectral(as_signal(high, FS))
    white_r = compute_spectral(as_signal(noise, FS))
    assert low_r.values["spectral_skewness"] > 1.0
    assert high_r.values["spectral_skewness"] < -0.5
    assert abs(white_r.values["spectral_skewness"]) < 0.1
    # A flat distribution over bins has excess kurtosis -1.2 (uniform); noise's magnitude jitter adds a little.
    assert white_r.values["spectral_kurtosis"] == pytest.approx(-1.2, abs=0.1)
    assert low_r.values["spectral_kurtosis"] > white_r.values["spectral_kurtosis"]


def test_flux_of_alternating_tones_exceeds_steady_tone():
    # Tones switch every 1024 samples, so nearly every pair of 2048-sample frames differs: the median sees it.
    a = sine(440, 1024 / FS, FS, -6, channels=1)[0]
    b = sine(3000, 1024 / FS, FS, -6, channels=1)[0]
    alternating = np.concatenate([a, b] * 80)
    steady = sine(440, 4.0, FS, -6, channels=1)[0]
    flux_alt = compute_spectral(as_signal(alternating, FS)).values["spectral_flux"]
    flux_steady = compute_spectral(as_signal(steady, FS)).values["spectral_flux"]
    assert flux_steady < 1e-3 < flux_alt


def test_sine_peak_magnitude_scaling_is_amplitude():
    """Window scaled to sum 2: a full-scale sine's spectral peak is ~1.0 (flux of on/off = ~peak norm)."""
    from mirflow.features.spectral import magnitude_frames
    x = sine(46 * FS / 2048, 1.0, FS, 0.0, channels=1)[0].astype(np.float64)  # bin-centred
    mags = next(magnitude_frames(x, 2048, 512))
    assert mags.max() == pytest.approx(1.0, abs=0.01)


def test_silence_and_too_short():
    r = compute_spectral(as_signal(np.zeros(FS), FS))
    assert r.absent["spectral_flatness"] == "silent" and not r.values
    r = compute_spectral(as_signal(_noise(0.01), FS))
    assert r.absent["spectral_flux"].startswith("too short")


def test_leading_silence_frames_are_skipped_for_shape_descriptors():
    noise = _noise(3)
    padded = np.concatenate([np.zeros(FS * 3, dtype=np.float32), noise])
    a = compute_spectral(as_signal(noise, FS)).values
    b = compute_spectral(as_signal(padded, FS)).values
    assert b["spectral_flatness"] == pytest.approx(a["spectral_flatness"], abs=0.01)
