"""Audio Commons timbral models through the scoped compatibility layer.

Checks: values equal those of the unmodified library (run with the minimal
global shim in a separate process, from a WAV file path); orderings that must
hold; the compatibility layer leaves numpy, librosa and timbral_models exactly
as they were; timeouts and model errors become absent keys with reasons.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import librosa
import librosa.onset
import numpy as np
import pytest
import scipy
import scipy.signal
import soundfile as sf

from conftest import as_signal
from mirflow.compat import timbral as compat
from mirflow.features import timbral
from mirflow.features.timbral import KEYS, TimbralParams, compute_timbral, run_model_isolated

SR = 44100
ORIGINAL_ONSET_STRENGTH = librosa.onset.onset_strength
ORIGINAL_ONSET_DETECT = librosa.onset.onset_detect
ORIGINAL_RESAMPLE = librosa.resample
ORIGINAL_BUTTER = scipy.signal.butter


def _test_signal(sample_rate: int, channels: int, seconds: float = 3.0) -> np.ndarray:
    """Plucked harmonic tones plus noise bursts, different per channel; (channels, frames) float32."""
    rng = np.random.default_rng(11)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    out = np.zeros((channels, n))
    for ch in range(channels):
        for i, onset in enumerate(np.arange(0.1 + 0.07 * ch, seconds - 0.5, 0.4)):
            k = int(onset * sample_rate)
            tt = t[: n - k]
            f0 = 110.0 * 2 ** ((3 * i + ch) % 12 / 12)
            out[ch, k:] += 0.3 * np.exp(-4 * tt) * sum(np.sin(2 * np.pi * f0 * h * tt) / h for h in range(1, 8))
            m = min(int(0.05 * sample_rate), n - k)
            out[ch, k:k + m] += 0.2 * rng.standard_normal(m) * np.exp(-60 * tt[:m])
    return (0.8 * out / np.abs(out).max()).astype(np.float32)


REFERENCE_SCRIPT = textwrap.dedent("""
    # The unmodified library with the minimal *global* shim (numpy 2 / librosa 0.11), from a file path.
    import json, sys
    import numpy as np, librosa, librosa.onset
    np.lib.pad = np.pad
    _os, _od, _rs = librosa.onset.onset_strength, librosa.onset.onset_detect, librosa.resample
    librosa.onset.onset_strength = lambda y=None, sr=22050, *a, **k: _os(y=y, sr=sr, *a, **k)
    librosa.onset.onset_detect = lambda y=None, sr=22050, *a, **k: _od(y=y, sr=sr, *a, **k)
    librosa.core.resample = librosa.resample = lambda y, orig_sr=None, target_sr=None, **k: _rs(
        y, orig_sr=orig_sr, target_sr=target_sr, **k)
    import timbral_models as tm
    path = sys.argv[1]
    out = {name: float(getattr(tm, "timbral_" + name)(path))
           for name in ("brightness", "roughness", "hardness", "depth", "booming", "sharpness", "warmth")}
    if sys.argv[2] == "reverb":
        out["reverberation"] = 100.0 * float(tm.timbral_reverb(path, dev_output=True)[1])
    print("RESULT " + json.dumps(out))
""")


def _reference_values(tmp_path, samples: np.ndarray, sample_rate: int, with_reverb: bool) -> dict:
    path = tmp_path / "reference.wav"
    sf.write(path, samples.T, sample_rate, subtype="FLOAT")
    completed = subprocess.run([sys.executable, "-c", REFERENCE_SCRIPT, str(path),
                                "reverb" if with_reverb else "no"],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    line = [ln for ln in completed.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def test_values_equal_the_unmodified_library_stereo_44k(tmp_path):
    samples = _test_signal(SR, 2)
    reference = _reference_values(tmp_path, samples, SR, with_reverb=True)
    ours = compute_timbral(as_signal(samples, SR))
    assert ours.absent == {}
    assert set(ours.values) == set(KEYS)
    for key, value in reference.items():
        assert ours.values[key] == pytest.approx(value, rel=0, abs=1e-9), key
    assert 0 < ours.meta["reverb_rt60_s"] < 2


def test_values_equal_the_unmodified_library_mono_22k_resampled(tmp_path):
    # Below 44.1 kHz the library upsamples with librosa.core.resample(y, fs, 44100): the
    # positional call the compatibility layer must forward. The reverb model is skipped: it
    # would resample a (frames, channels) array along the wrong axis in both versions alike.
    samples = _test_signal(22050, 1, seconds=2.5)
    reference = _reference_values(tmp_path, samples, 22050, with_reverb=False)
    ours = compute_timbral(as_signal(samples, 22050), TimbralParams(
        models=tuple(k for k in KEYS if k != "reverberation"), speedups=False))
    for key, value in reference.items():
        assert ours.values[key] == pytest.approx(value, rel=0, abs=1e-9), key


def _assert_libraries_untouched():
    import timbral_models.Timbral_Hardness as hardness_module
    import timbral_models.Timbral_Roughness as roughness_module
    import timbral_models.timbral_util as util_module

    assert not hasattr(np.lib, "pad")
    assert librosa.onset.onset_strength is ORIGINAL_ONSET_STRENGTH
    assert librosa.onset.onset_detect is ORIGINAL_ONSET_DETECT
    assert librosa.resample is ORIGINAL_RESAMPLE and librosa.core.resample is ORIGINAL_RESAMPLE
    assert scipy.signal.butter is ORIGINAL_BUTTER
    assert hardness_module.np is np and roughness_module.np is np
    assert hardness_module.librosa is librosa and util_module.librosa is librosa
    assert util_module.scipy is scipy and util_module.butter is ORIGINAL_BUTTER
    assert util_module.sample_and_hold_envelope_calculation.__module__ == "timbral_models.timbral_util"
    assert util_module.specific_loudness.__module__ == "timbral_models.timbral_util"
    import timbral_models.Timbral_Reverb as reverb_module
    for module in (util_module, reverb_module):
        assert "max" not in vars(module) and "min" not in vars(module)
    assert not compat.is_active()


def test_compat_layer_is_scoped_to_the_call():
    import timbral_models.Timbral_Hardness as hardness_module
    import timbral_models.timbral_util as util_module

    _assert_libraries_untouched()
    with compat.timbral_compat(speedups=True):
        assert hardness_module.np is not np and hasattr(hardness_module.np.lib, "pad")
        assert util_module.librosa.onset.onset_strength is not ORIGINAL_ONSET_STRENGTH
        assert util_module.scipy.signal.butter is not ORIGINAL_BUTTER
        assert util_module.max is not max
        # The shared modules themselves are unchanged even while the block is open.
        assert not hasattr(np.lib, "pad")
        assert librosa.onset.onset_strength is ORIGINAL_ONSET_STRENGTH
        with compat.timbral_compat(speedups=True):   # re-entrant
            pass
        assert compat.is_active()
        with pytest.raises(RuntimeError):
            with compat.timbral_compat(speedups=False):
                pass
    _assert_libraries_untouched()
    with pytest.raises(ZeroDivisionError):
        with compat.timbral_compat():
            raise ZeroDivisionError("restored even on error")
    _assert_libraries_untouched()
    compute_timbral(as_signal(_test_signal(SR, 1, seconds=1.5), SR), TimbralParams(models=("hardness", "roughness")))
    _assert_libraries_untouched()


def test_memoised_filter_design_returns_identical_read_only_arrays():
    design = compat.memoised_filter_design(scipy.signal.butter)
    b1, a1 = design(2, [0.1, 0.2], "bandpass")
    b2, a2 = design(2, [0.1, 0.2], "bandpass")
    assert b1 is b2 and a1 is a2
    ref_b, ref_a = scipy.signal.butter(2, [0.1, 0.2], "bandpass")
    assert np.array_equal(b1, ref_b) and np.array_equal(a1, ref_a)
    assert not b1.flags.writeable
    assert len(design.cache) == 1
    design(2, [0.1, 0.3], "bandpass")
    assert len(design.cache) == 2


def test_array_aware_reductions_equal_the_builtins():
    fast_max, fast_min = compat.array_aware(max, np.max), compat.array_aware(min, np.min)
    rng = np.random.default_rng(2)
    cases = [rng.standard_normal(1000), rng.standard_normal(7).astype(np.float32), np.arange(-5, 9),
             np.array([0.0, -0.0, -1.0]), np.array([-0.0, 0.0, 1.0]), np.array([1.0, np.nan, 3.0]),
             # the same edge cases long enough for the numpy path (ARRAY_REDUCTION_MIN_SIZE)
             np.concatenate([[0.0, -0.0], -np.ones(60)]), np.concatenate([[-0.0, 0.0], np.ones(60)]),
             np.concatenate([rng.standard_normal(60), [np.nan]]), rng.standard_normal(60).astype(np.float32),
             [3, 1.5, -2], (4, 9)]
    for values in cases:
        for fast, builtin in ((fast_max, max), (fast_min, min)):
            got, want = fast(values), builtin(values)
            assert type(got) is type(want)
            assert got == want or (np.isnan(got) and np.isnan(want))
            assert np.signbit(got) == np.signbit(want)
    assert fast_max(1, 5, 3) == 5 and fast_min([2, 1], key=lambda v: -v) == 2
    with pytest.raises(ValueError):
        fast_max(np.array([]))


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
def test_line_by_line_median_filter_equals_scipys_nd_filter(axis):
    import scipy.ndimage

    rng = np.random.default_rng(4)
    x = np.abs(rng.standard_normal((67, 203))).astype(np.float32)
    x[5, 10:40] = 0.0  # ties and flat runs
    size = [1, 1]
    size[axis] = 31
    want = scipy.ndimage.median_filter(x, size=size, mode="reflect")
    got = compat.median_filter_along_axis(x, 31, axis)
    assert got.dtype == x.dtype and np.array_equal(got, want)


def test_fast_hpss_is_bit_identical_to_librosa_and_falls_back_for_other_arguments():
    import librosa.decompose

    stft = librosa.stft(_test_signal(SR, 1, seconds=3.0)[0].astype(np.float32))
    want_h, want_p = librosa.decompose.hpss(stft)
    got_h, got_p = compat.hpss_default_fast(stft)
    assert got_h.dtype == want_h.dtype and np.array_equal(got_h, want_h) and np.array_equal(got_p, want_p)
    magnitude = np.abs(stft)
    for got, want in zip(compat.hpss_default_fast(magnitude), librosa.decompose.hpss(magnitude)):
        assert np.array_equal(got, want)
    for got, want in zip(compat.hpss_default_fast(stft, margin=2.0, kernel_size=17),
                         librosa.decompose.hpss(stft, margin=2.0, kernel_size=17)):
        assert np.array_equal(got, want)
    with compat.timbral_compat(speedups=True):
        import timbral_models.timbral_util as util_module
        assert util_module.librosa.decompose.hpss is compat.hpss_default_fast
    with compat.timbral_compat(speedups=False):
        assert util_module.librosa.decompose.hpss is librosa.decompose.hpss


def test_compiled_envelope_is_bit_identical_to_the_library_loop():
    import timbral_models.timbral_util as util_module

    original = util_module.sample_and_hold_envelope_calculation
    rng = np.random.default_rng(6)
    t = np.arange(3 * SR) / SR
    bursts = np.sin(2 * np.pi * 220 * t) * np.exp(-(t % 0.37) * 25) + 0.01 * rng.standard_normal(t.size)
    with compat.timbral_compat(speedups=True):
        assert util_module.sample_and_hold_envelope_calculation is compat.sample_and_hold_envelope_fast
        for x, kwargs in ((bursts, {}), (bursts, {"decay_time": 0.1}), (rng.standard_normal(5000), {}),
                          (np.zeros(100), {}), (np.array([0.5]), {"hold_time": 0.0})):
            got = compat.sample_and_hold_envelope_fast(x, SR, **kwargs)
            want = original(x, SR, **kwargs)
            assert got.dtype == want.dtype and np.array_equal(got, want)
        # float32 and NaN input go to the library's own loop.
        x32 = bursts[:4000].astype(np.float32)
        assert np.array_equal(compat.sample_and_hold_envelope_fast(x32, SR), original(x32, SR))
        with_nan = bursts[:4000].copy()
        with_nan[100] = np.nan
        np.testing.assert_array_equal(compat.sample_and_hold_envelope_fast(with_nan, SR), original(with_nan, SR))
    assert util_module.sample_and_hold_envelope_calculation is original


def test_memoised_specific_loudness_equals_the_library_and_hands_out_copies(monkeypatch):
    import timbral_models.timbral_util as util_module

    original = util_module.specific_loudness
    calls = []

    def counting(x, Pref, fs, Mod):
        calls.append(1)
        return original(x, Pref, fs, Mod)

    rng = np.random.default_rng(8)
    windows = [0.1 * rng.standard_normal(4096), np.sin(2 * np.pi * 1000 * np.arange(4096) / 44100)]
    monkeypatch.setattr(compat, "_loudness_cache", compat.OrderedDict())
    with compat.timbral_compat(speedups=True):
        assert util_module.specific_loudness is compat.specific_loudness_memoised
        monkeypatch.setattr(compat, "_original_specific_loudness", counting)
        for w in windows:
            want_entire, want_single = original(w, 100.0, 44100, 0)
            first = util_module.specific_loudness(w, Pref=100.0, fs=44100, Mod=0)
            first[1][:] = -1.0  # a caller modifying its array must not change what the next caller gets
            second = util_module.specific_loudness(w.copy(), Pref=100.0, fs=44100, Mod=0)
            assert second[0] == want_entire and np.array_equal(second[1], want_single)
        assert len(calls) == 2  # one computation per distinct window
        util_module.specific_loudness(windows[0], Pref=100.0, fs=44100.0, Mod=0)  # a float rate is another key
        assert len(calls) == 3
    assert util_module.specific_loudness is original


def test_orderings_brightness_and_reverberation():
    rng = np.random.default_rng(5)
    n = 3 * SR
    t = np.arange(n) / SR
    noise = (0.3 * rng.standard_normal(n)).astype(np.float32)
    low_sine = (0.5 * np.sin(2 * np.pi * 80 * t)).astype(np.float32)
    only_brightness = TimbralParams(models=("brightness",))
    bright_noise = compute_timbral(as_signal(noise, SR), only_brightness).values["brightness"]
    bright_sine = compute_timbral(as_signal(low_sine, SR), only_brightness).values["brightness"]
    assert bright_noise > bright_sine + 50          # measured: ~87 vs ~1

    clicks = np.zeros(n)
    clicks[np.arange(int(0.1 * SR), n, SR // 2)] = 0.9
    tail_len = int(2.4 * SR)
    tail = rng.standard_normal(tail_len) * np.exp(-6.91 * np.arange(tail_len) / SR / 2.0)  # RT60 = 2 s
    wet = scipy.signal.fftconvolve(clicks, tail)[:n]
    wet = 0.9 * wet / np.abs(wet).max()
    only_reverb = TimbralParams(models=("reverberation",))
    dry_result = compute_timbral(as_signal(clicks.astype(np.float32), SR), only_reverb)
    wet_result = compute_timbral(as_signal(wet.astype(np.float32), SR), only_reverb)
    assert wet_result.values["reverberation"] > dry_result.values["reverberation"] + 15   # ~53 vs ~30
    assert wet_result.meta["reverb_rt60_s"] > dry_result.meta["reverb_rt60_s"]


def test_reverb_timeout_is_absent_with_reason():
    # A 0.2 s budget cannot even start the worker's Python: the process is killed.
    result = compute_timbral(as_signal(_test_signal(SR, 1, seconds=1.5), SR),
                             TimbralParams(models=("reverberation",), reverb_timeout_s=0.2))
    assert result.absent == {"reverberation": "timeout"}
    assert result.meta["errors"]["reverberation"] == "timeout after 0.2 s"


def test_model_errors_are_recorded_not_swallowed(monkeypatch):
    real = timbral.run_model_in_process

    def failing(model, audio, sample_rate, cache):
        if model == "depth":
            raise FloatingPointError("depth exploded")
        return real(model, audio, sample_rate, cache)

    monkeypatch.setattr(timbral, "run_model_in_process", failing)
    result = compute_timbral(as_signal(_test_signal(SR, 1, seconds=1.5), SR),
                             TimbralParams(models=("depth", "brightness")))
    assert result.absent == {"depth": "FloatingPointError: depth exploded"}
    assert result.meta["errors"] == {"depth": "FloatingPointError: depth exploded"}
    assert "brightness" in result.values


def test_isolated_worker_reports_exceptions():
    outcome = run_model_isolated("no_such_model", np.zeros(SR), SR, timeout_s=120, speedups=False)
    assert outcome["error"].startswith("AttributeError")


def test_silent_and_short_input_are_absent():
    silent = compute_timbral(as_signal(np.zeros((2, 2 * SR), np.float32), SR))
    assert silent.values == {} and set(silent.absent) == set(KEYS)
    assert set(silent.absent.values()) == {"silent"}
    half_second = (0.5 * np.sin(2 * np.pi * 440 * np.arange(SR // 2) / SR)).astype(np.float32)
    short = compute_timbral(as_signal(half_second, SR))
    assert short.values == {} and all(r.startswith("too short") for r in short.absent.values())


def test_unknown_model_name_is_rejected():
    from mirflow.errors import ConfigError
    from mirflow.params import from_config

    with pytest.raises(ConfigError, match=r"timbral\.models.*'brightness'"):
        from_config(TimbralParams, {"models": ["loudness"]}, where="timbral")

