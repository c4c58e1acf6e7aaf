"""Demucs separation code path with a random-weight HTDemucs in the real checkpoint format."""
import numpy as np
import pytest

from conftest import as_signal
from demucs_fixture import write_random_htdemucs
from mirflow.separation import SeparationError, apply_gpu_env_defaults, load_separator, separate, write_stem

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_random_htdemucs(tmp_path_factory.mktemp("models") / "demucs")


def test_gpu_env_defaults_do_not_override_the_user():
    env = {"PYTORCH_ALLOC_CONF": "expandable_segments:True"}
    applied = apply_gpu_env_defaults(env)
    assert env["PYTORCH_ALLOC_CONF"] == "expandable_segments:True"
    assert applied == {"HIP_FORCE_DEV_KERNARG": "1"} and env["HIP_FORCE_DEV_KERNARG"] == "1"


def test_random_checkpoint_loads_and_separates_mono_22k_into_four_stereo_44k_stems(checkpoint, tmp_path):
    separator = load_separator("htdemucs", [str(checkpoint)], "cpu")
    assert list(separator.sources) == ["drums", "bass", "other", "vocals"]
    sr = 22050
    t = np.arange(int(sr * 1.5)) / sr
    signal = as_signal(0.3 * np.sin(2 * np.pi * 220 * t), sr)
    stems, out_sr, meta = separate(separator, signal, {"shifts": 0}, "cpu")
    assert out_sr == 44100 and meta["resampled"].startswith("22050")
    assert meta["channels"] == "mono duplicated to stereo"
    for name, audio in stems.items():
        assert audio.shape == (2, int(1.5 * 44100)) and np.all(np.isfinite(audio)), name
    facts = write_stem(str(tmp_path / "drums.flac"), stems["drums"], out_sr, {"format": "flac"})
    import soundfile as sf

    data, sr_read = sf.read(tmp_path / "drums.flac", always_2d=True)
    assert sr_read == 44100 and data.shape == (int(1.5 * 44100), 2)
    assert facts["clipped_samples"] == int(np.count_nonzero(np.abs(stems["drums"]) > 1.0))


def test_missing_checkpoint_of_a_bag_is_a_clear_error(checkpoint):
    with pytest.raises(SeparationError, match="missing"):
        load_separator("htdemucs_ft", [str(checkpoint)], "cpu")


def test_oom_is_retried_once_with_a_smaller_segment_then_fails(monkeypatch, checkpoint):
    separator = load_separator("htdemucs", [str(checkpoint)], "cpu")
    calls = []

    def fake_apply(model, mix, segment=None, **kw):
        calls.append(segment)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr("demucs.apply.apply_model", fake_apply)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    signal = as_signal(np.zeros(44100, dtype=np.float32) + 0.1, 44100)
    with pytest.raises(SeparationError, match="out of memory"):
        separate(separator, signal, {"segment_s": 7.0, "oom_retry_segment_s": 3.0}, "cuda")
    assert calls == [7.0, 3.0]
