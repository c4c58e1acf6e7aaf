"""The numba JIT cache: many processes on a cold cache never crash, and the warm-up covers what mirflow calls.

The race these tests guard against is numba issue 10128 (reproduced by ../shared/tools/numba-cache-race.sh):
processes compiling librosa's cached gufuncs into one empty cache at once leave a mismatched pair of cache
files, and processes loading it die with SIGSEGV.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

# What a family job does: check the cache (mirflow.runner.compute_family), then use librosa's numba code on
# float32 and float64 input (the shared race script's workload), and say whether it ran the warm-up.
JOB = textwrap.dedent("""
    import sys
    from mirflow.jitcache import ensure_warm
    warmed = ensure_warm()
    import numpy as np, librosa
    kinds = (np.float32, np.float64) if sys.argv[1] == "a" else (np.float64, np.float32)
    for dt in kinds:
        x = np.random.default_rng(0).random(5000).astype(dt)
        librosa.util.peak_pick(x, pre_max=3, post_max=3, pre_avg=3, post_avg=5, delta=0.1, wait=10)
    librosa.onset.onset_detect(y=np.random.default_rng(0).standard_normal(44100 * 3), sr=44100)
    print("WARMED" if warmed else "LOADED")
""")

# Every numba-using computation of the families, on signals unlike the warm-up's (other rates, lengths,
# channel counts), with the timbral reverb model in its own worker process as in a real job.
FAMILIES = textwrap.dedent("""
    import numpy as np
    from mirflow.jitcache import ensure_warm
    assert not ensure_warm()
    from mirflow.audio import AudioSignal
    from mirflow.features.harmony import compute_harmony_stems
    from mirflow.features.timbral import compute_timbral
    for sr, ch, seconds in ((48000, 2, 5.0), (16000, 1, 3.3)):
        t = np.arange(int(sr * seconds)) / sr
        noise = np.random.default_rng(sr).standard_normal(t.size)
        y = 0.4 * np.sin(2 * np.pi * 110 * t) + 0.2 * noise * (t % 0.4 < 0.05)
        signal = AudioSignal(np.tile(y.astype(np.float32), (ch, 1)), sr)
        assert compute_harmony_stems(signal).values
        assert len(compute_timbral(signal).values) == 8
""")


def _env(cache: Path) -> dict:
    return {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO / "scripts"),
            "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def _snapshot(cache: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(cache)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in cache.rglob("*") if p.is_file() and p.name != "mirflow-warm.lock"}


@pytest.fixture(scope="module")
def raced_cache(tmp_path_factory):
    """Four jobs started at once on one empty cache, then three more loading it (as the race script does)."""
    cache = tmp_path_factory.mktemp("numba-cache")
    script = tmp_path_factory.mktemp("job") / "job.py"
    script.write_text(JOB)
    racing = [subprocess.Popen([sys.executable, str(script), "a" if i % 2 else "b"], env=_env(cache),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    first = [(p.wait(timeout=600), *p.communicate()) for p in racing]
    later = [subprocess.run([sys.executable, str(script), "a"], env=_env(cache), capture_output=True, text=True,
                            timeout=300) for _ in range(3)]
    return cache, first, [(p.returncode, p.stdout, p.stderr) for p in later]


def test_many_processes_on_a_cold_cache_never_crash(raced_cache):
    _cache, first, later = raced_cache
    for rc, _out, err in first + later:
        assert rc == 0, f"a job died (rc {rc}, {'SIGSEGV' if rc == -11 else 'see stderr'}):\n{err[-3000:]}"
    # Exactly one process compiled; the three others waited for it and then only loaded.
    assert sorted(out.strip() for _rc, out, _err in first) == ["LOADED", "LOADED", "LOADED", "WARMED"]
    assert all(out.strip() == "LOADED" for _rc, out, _err in later)


def test_warm_up_covers_every_cached_numba_function_mirflow_calls(raced_cache):
    cache, *_ = raced_cache
    before = _snapshot(cache)
    names = {Path(p).parts[0] for p in before}
    assert any(n.startswith("librosa_") for n in names) and any(n.startswith("compat_") for n in names), names
    proc = subprocess.run([sys.executable, "-c", FAMILIES], env=_env(cache), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = _snapshot(cache)
    # Nothing compiled at run time means nothing written: no new or rewritten cache file.
    assert {k: v for k, v in after.items() if before.get(k) != v} == {}


def test_warm_check_is_cheap_and_does_not_import_librosa(raced_cache):
    cache, *_ = raced_cache
    code = "import sys; from mirflow.jitcache import ensure_warm; assert not ensure_warm(); " \
           "assert 'librosa' not in sys.modules and 'numba' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], env=_env(cache), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_stamp_key_changes_with_mirflow_numba_code(monkeypatch, tmp_path):
    from mirflow import jitcache

    key = jitcache.stamp_key()
    assert key == jitcache.stamp_key() and len(key) == 20
    monkeypatch.setattr(jitcache, "_version", lambda dist: "9.9" if dist == "librosa" else "1.0")
    assert jitcache.stamp_key() != key


def test_workflow_points_numba_at_one_cache(monkeypatch, tmp_path):
    from mirflow import jitcache

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert jitcache.configure() == jitcache.DEFAULT_CACHE_DIR == REPO / ".cache" / "numba"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert jitcache.configure() == tmp_path  # the user's own setting wins
