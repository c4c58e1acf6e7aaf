"""Loudness against the published BS.1770 coefficients, EBU Tech 3341/3342 test cases and pyloudnorm."""
import numpy as np
import pytest

from conftest import as_signal, sine
from mirflow.features.loudness import compute_loudness, integrated_loudness_lufs, k_weighting_sos, loudness_range_lu

FS = 48000


def test_k_weighting_matches_bs1770_table_at_48k():
    sos = k_weighting_sos(48000)
    # ITU-R BS.1770-4, tables 1 and 2
    np.testing.assert_allclose(sos[0, :3], [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-8)
    np.testing.assert_allclose(sos[0, 4:], [-1.69065929318241, 0.73248077421585], atol=1e-8)
    np.testing.assert_allclose(sos[1, :3], [1.0, -2.0, 1.0])
    np.testing.assert_allclose(sos[1, 4:], [-1.99004745483398, 0.99007225036621], atol=1e-8)


def _sequence(levels_and_durations, fs=FS):
    return np.concatenate([sine(1000, d, fs, lvl) for lvl, d in levels_and_durations], axis=1)


@pytest.mark.parametrize("segments, expected", [
    ([(-23, 20)], -23.0),                                   # Tech 3341 case 1
    ([(-33, 20)], -33.0),                                   # case 2
    ([(-36, 10), (-23, 60), (-36, 10)], -23.0),             # case 3
    ([(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)], -23.0),  # case 4
    ([(-26, 20), (-20, 20.1), (-26, 20)], -23.0),           # case 5
])
def test_integrated_loudness_ebu_tech_3341(segments, expected):
    assert integrated_loudness_lufs(_sequence(segments), FS) == pytest.approx(expected, abs=0.1)


@pytest.mark.parametrize("segments, expected", [
    ([(-20, 20), (-30, 20)], 10.0),                          # Tech 3342 case 1
    ([(-20, 20), (-15, 20)], 5.0),                           # case 2
    ([(-40, 20), (-20, 20)], 20.0),                          # case 3
    ([(-50, 20), (-35, 20), (-20, 20), (-35, 20), (-50, 20)], 15.0),  # case 4
])
def test_loudness_range_ebu_tech_3342(segments, expected):
    assert loudness_range_lu(_sequence(segments), FS) == pytest.approx(expected, abs=1.0)


def test_integrated_loudness_matches_pyloudnorm_on_noise_and_44k1():
    # pyloudnorm designs its shelf from rounded parameters (+4 dB at 1500 Hz) while ours reproduces the
    # BS.1770 table exactly (test above): on bright noise the two differ by ~0.05 LU, hence 0.1 LU.
    pyln = pytest.importorskip("pyloudnorm")
    rng = np.random.default_rng(1)
    for fs in (44100, 48000):
        x = (rng.standard_normal((2, fs * 12)) * np.linspace(0.02, 0.3, fs * 12)).astype(np.float32)
        ours = integrated_loudness_lufs(x, fs)
        ref = pyln.Meter(fs).integrated_loudness(x.T.astype(np.float64))
        assert ours == pytest.approx(ref, abs=0.1)


def test_silence_is_absent_with_reason_not_a_floor():
    result = compute_loudness(as_signal(np.zeros((2, FS * 5)), FS))
    assert result.values == {}
    assert result.absent == {"lufs": "silent", "lra": "silent"}


def test_below_absolute_gate_is_silent_reason():
    result = compute_loudness(as_signal(sine(1000, 5, FS, -90), FS))
    assert "lufs" not in result.values and result.absent["lufs"].startswith("silent")


def test_short_signal_has_lufs_but_no_lra():
    result = compute_loudness(as_signal(sine(1000, 2.0, FS, -23), FS))
    assert result.values["lufs"] == pytest.approx(-23.0, abs=0.1)
    assert result.absent["lra"].startswith("too short")


def test_mono_sine_is_3db_below_stereo():
    stereo = compute_loudness(as_signal(sine(1000, 10, FS, -23, channels=2), FS))
    mono = compute_loudness(as_signal(sine(1000, 10, FS, -23, channels=1), FS))
    assert stereo.values["lufs"] - mono.values["lufs"] == pytest.approx(10 * np.log10(2), abs=0.01)
