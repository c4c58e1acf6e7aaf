"""Audiobox Aesthetics: the resampler against torchaudio's numbers, the windowing against the package's own
``make_inference_batch``, and the whole load-and-predict path against the package's own ``AesPredictor`` on a
random-weight checkpoint of the real architecture saved in the package's checkpoint format."""
from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

from aesthetics_fixture import TARGET_TRANSFORM, write_random_aesthetics_checkpoint
from conftest import REPO, as_signal
from mirflow import aesthetics as aes

torch = pytest.importorskip("torch")
pytest.importorskip("audiobox_aesthetics.model.aes")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

SR = 16000


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_random_aesthetics_checkpoint(tmp_path_factory.mktemp("aes") / "checkpoint.pt")


@pytest.fixture(scope="module")
def loaded(checkpoint):
    return aes.load_aesthetics_model(str(checkpoint), "cpu")


@pytest.fixture
def package_infer(monkeypatch):
    """``audiobox_aesthetics.infer`` imported with a stand-in torchaudio (not installed here).

    The stand-in's resample only accepts equal rates, so the package code under
    test never resamples: every input given to it is already at 16 kHz.
    """
    functional = types.ModuleType("torchaudio.functional")

    def resample(wav, orig_freq, new_freq):
        assert orig_freq == new_freq, "test inputs must already be at 16 kHz"
        return wav

    functional.resample = resample
    stub = types.ModuleType("torchaudio")
    stub.functional = functional
    monkeypatch.setitem(sys.modules, "torchaudio", stub)
    monkeypatch.setitem(sys.modules, "torchaudio.functional", functional)
    monkeypatch.delitem(sys.modules, "audiobox_aesthetics.infer", raising=False)
    import audiobox_aesthetics.infer as infer

    yield infer
    sys.modules.pop("audiobox_aesthetics.infer", None)


def test_resampler_reproduces_torchaudio_values_and_removes_content_above_nyquist():
    # Reference values: torchaudio 2.11.0 functional.resample(x, 44100, 16000), default arguments,
    # float32, for x = 0.5 sin(2 pi 1 kHz t) + 0.25 sin(2 pi 12 kHz t), 4410 samples.
    n = np.arange(4410)
    x = (0.5 * np.sin(2 * np.pi * 1000 * n / 44100) + 0.25 * np.sin(2 * np.pi * 12000 * n / 44100)).astype(np.float32)
    y = aes.sinc_resample(torch.from_numpy(x)[None], 44100, SR)[0].numpy()
    assert y.shape == (1600,)
    idx = [0, 1, 2, 100, 537, 800, 1234, 1598, 1599]
    expected = [0.06870237737894058, 0.18097569048404694, 0.3576463460922241, 0.49980148673057556,
                -0.1917043924331665, -3.5070115700364113e-09, 0.35341140627861023, -0.3576446771621704,
                -0.18097764253616333]
    np.testing.assert_allclose(y[idx], expected, rtol=0, atol=2e-6)
    # The 12 kHz component (above the 8 kHz Nyquist limit) is gone: only the 1 kHz sine remains.
    m = np.arange(1600)
    assert np.max(np.abs(y[80:-80] - 0.5 * np.sin(2 * np.pi * 1000 * m[80:-80] / SR))) < 1e-3


@pytest.mark.parametrize("sr,expected", [
    (48000, [0.01874602399766445, 0.4612237513065338, -0.19126541912555695, -0.1885482519865036]),
    (22050, [0.011166458018124104, 0.46126270294189453, -0.19124090671539307, -0.18903124332427979]),
])
def test_resampler_matches_torchaudio_at_other_rates(sr, expected):
    k = np.arange(sr // 10)
    x = (0.5 * np.sin(2 * np.pi * 1000 * k / sr)).astype(np.float32)
    y = aes.sinc_resample(torch.from_numpy(x)[None], sr, SR)[0].numpy()
    assert y.shape == (1600,)
    np.testing.assert_allclose(y[[0, 3, 777, 1599]], expected, rtol=0, atol=2e-6)


def test_resampler_equals_torchaudio_when_it_is_installed():
    torchaudio = pytest.importorskip("torchaudio")
    x = torch.randn(2, 44100 + 17, generator=torch.Generator().manual_seed(0))
    for sr in (44100, 48000, 22050, 8000):
        assert torch.equal(aes.sinc_resample(x, sr, SR), torchaudio.functional.resample(x, sr, SR))


def test_windows_equal_the_packages_make_inference_batch(package_infer):
    wave = torch.randn(1, 25 * SR + 123, generator=torch.Generator().manual_seed(1))
    wavs, masks, weights = aes.windows(wave)
    ref_wavs, ref_masks, ref_weights, bids = package_infer.make_inference_batch([wave], 10, 10, sample_rate=SR)
    assert wavs.shape == (3, 1, 10 * SR) and bids == [0, 0, 0]
    assert torch.equal(wavs, torch.stack(ref_wavs)) and torch.equal(masks, torch.stack(ref_masks))
    assert torch.equal(weights, torch.tensor(ref_weights))
    np.testing.assert_allclose(weights.numpy(), [1.0, 1.0, (5 * SR + 123) / (10 * SR)], rtol=1e-7)
    assert int(masks[2].sum()) == 5 * SR + 123 and float(wavs[2, 0, 5 * SR + 123:].abs().sum()) == 0.0


def test_prediction_equals_the_packages_own_predictor(checkpoint, loaded, package_infer, monkeypatch):
    # 11.5 s of stereo at 16 kHz: two windows, the second 1.5 s long (weight 0.15).
    rng = np.random.default_rng(3)
    t = np.arange(int(11.5 * SR)) / SR
    left = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
            + 0.05 * rng.standard_normal(t.size))
    right = 0.2 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)
    signal = as_signal(np.stack([left, right]), SR)

    # One window per forward pass here, both windows in one batch in the package: batching changes
    # nothing but float rounding (measured 5e-7).
    result = aes.predict_aesthetics(loaded, signal, aes.AestheticsParams(decimals=None, batch_windows=1))
    # The package picks CUDA by itself when it can; compare on the CPU like ``loaded``.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    predictor = package_infer.AesPredictor(checkpoint_pth=str(checkpoint))
    wav = torch.from_numpy(signal.samples).mean(0, keepdim=True)
    (expected,) = predictor.forward([{"path": wav, "sample_rate": SR}])

    assert result.meta["windows"] == 2 and not result.absent
    for axis, key in aes.AXES.items():
        assert np.isfinite(result.values[key])
        assert result.values[key] == pytest.approx(expected[axis], abs=1e-5), key
    # The de-normalisation statistics come from the checkpoint, and the four axes really differ.
    assert result.meta["target_transform"]["production_quality"] == {"mean": 6.8, "std": 1.3}
    assert len({round(v, 3) for v in result.values.values()}) == 4


def test_model_input_is_the_float32_channel_mean_resampled_to_16k():
    rng = np.random.default_rng(4)
    stereo = rng.uniform(-0.5, 0.5, size=(2, 44100)).astype(np.float32)
    wave = aes.model_input(as_signal(stereo, 44100))
    expected = aes.sinc_resample(torch.from_numpy(stereo).mean(0, keepdim=True), 44100, SR)
    assert wave.shape == (1, SR) and wave.dtype == torch.float32 and torch.equal(wave, expected)
    mono16 = aes.model_input(as_signal(stereo[0], SR))
    assert torch.equal(mono16, torch.from_numpy(stereo[0])[None])


def test_silence_and_too_short_input_are_absent_without_running_the_model():
    # The model object is never touched on these paths.
    dummy = aes.AestheticsModel(model=None, target_transform=dict.fromkeys(aes.AXES, (5.0, 1.0)), device="cpu",
                                checkpoint_sha256="0" * 64, model_cfg={}, load_s=0.0)
    silent = aes.predict_aesthetics(dummy, as_signal(np.zeros((2, 5 * SR)), SR))
    assert silent.values == {} and set(silent.absent.values()) == {"silent"}
    assert sorted(silent.absent) == sorted(aes.AXES.values())
    short = aes.predict_aesthetics(dummy, as_signal(0.1 * np.ones(SR // 2), SR),
                                   aes.AestheticsParams(min_duration_s=1.0))
    assert short.values == {} and all(r.startswith("too short (0.500 s") for r in short.absent.values())


def test_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(aes.AestheticsError, match="does not exist"):
        aes.load_aesthetics_model(str(tmp_path / "nope.pt"), "cpu")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(aes.AestheticsError, match="not an Audiobox Aesthetics checkpoint"):
        aes.load_aesthetics_model(str(foreign), "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_a_gpu_without_one_is_a_clear_error():
    from mirflow.errors import MirflowError

    with pytest.raises(MirflowError, match="aesthetics.device is 'cuda' but torch sees no GPU"):
        aes.pick_device("cuda")
    assert aes.pick_device("auto") == "cpu"


def test_module_and_model_class_import_without_torchaudio():
    code = ("import sys; sys.modules['torchaudio'] = None; import mirflow.aesthetics; "
            "from audiobox_aesthetics.model.aes import AesMultiOutput; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO / "scripts"), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_catalogue_lists_the_four_axes():
    from mirflow.catalogue import load_catalogue

    cat = load_catalogue()
    assert cat.keys_for_family("aesthetics") == list(aes.AXES.values())
    assert all(cat.entry(k).range == (1.0, 10.0) for k in aes.AXES.values())


def test_fixture_checkpoint_has_the_packages_format(checkpoint):
    ckpt = torch.load(checkpoint, map_location="cpu")
    assert set(ckpt) == {"state_dict", "model_cfg", "target_transform"}
    assert all(k.startswith("model.") for k in ckpt["state_dict"])
    assert ckpt["target_transform"] == TARGET_TRANSFORM
    n_params = sum(v.numel() for k, v in ckpt["state_dict"].items())
    assert 94_000_000 < n_params < 95_000_000
