"""Multiband RMS on sines whose band and level are known exactly."""
import numpy as np
import pytest

from conftest import as_signal, sine
from mirflow.features.multiband import compute_multiband_rms

FS = 44100


def test_60hz_sine_at_minus_6_dbfs_lands_in_bass_at_minus_9():
    r = compute_multiband_rms(as_signal(sine(60, 10, FS, -6.0), FS))
    assert r.values["rms_energy_bass"] == pytest.approx(-6.0 - 10 * np.log10(2), abs=0.1)
    for band in ("body", "mid", "air"):
        assert r.values[f"rms_energy_{band}"] < -40


def test_3khz_sine_lands_in_air_and_mid_is_low():
    r = compute_multiband_rms(as_signal(sine(5000, 5, FS, -12.0), FS))
    assert r.values["rms_energy_air"] == pytest.approx(-15.01, abs=0.1)
    assert r.values["rms_energy_bass"] == -60.0
    assert "rms_energy_bass" in r.meta["at_floor"]


def test_air_band_edge_capped_below_nyquist_at_32k():
    r = compute_multiband_rms(as_signal(sine(1000, 2, 32000, -6.0), 32000))
    low, high = r.meta["bands_hz"]["air"]
    assert low == 2500.0 and high == pytest.approx(0.999 * 16000, abs=0.01)


def test_band_above_nyquist_is_absent_with_reason():
    r = compute_multiband_rms(as_signal(sine(100, 2, 4000, -6.0), 4000))
    assert "rms_energy_air" in r.absent and "too low" in r.absent["rms_energy_air"]
    assert r.values["rms_energy_bass"] == pytest.approx(-9.03, abs=0.3)


def test_silence_is_absent_not_floor():
    r = compute_multiband_rms(as_signal(np.zeros((2, FS)), FS))
    assert not r.values and set(r.absent.values()) == {"silent"}
