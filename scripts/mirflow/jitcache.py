"""Numba's on-disk JIT cache, made safe for many processes starting at once.

librosa compiles its numba functions with ``cache=True`` (its ``guvectorize`` ones eagerly, when librosa is
imported), and so does the timbral envelope loop of :mod:`mirflow.compat.timbral`. When several processes
compile the same gufunc into one empty cache at the same time, they can leave a mismatched pair of cache
files (numba issue 10128: the ABI tag in a symbol name depends on the order a process compiled functions in),
and every later process that loads the pair dies with SIGSEGV. That is what crashed a fresh clone's first
parallel run.

The remedy here: every process that is about to use numba first calls :func:`ensure_warm`. Under an
exclusive file lock on the cache folder, the first one compiles every cached function mirflow uses, in one
process (:func:`warm`), and leaves a stamp; the others wait for the lock, see the stamp and only ever *load*
the cache afterwards. With the stamp present the check costs a file lock and a stat (librosa is not
imported). ``scripts/install.sh`` runs the warm-up once at install time, so a first run normally finds the
cache warm. The stamp is keyed by the interpreter, numba, llvmlite, librosa and timbral_models versions,
mirflow's own numba code and the CPU (numba caches native code per CPU model), so an upgrade, an edit or a
node with another CPU warms again instead of racing.

Run ``python -m mirflow.jitcache`` to warm the cache by hand (``--force`` redoes it).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sys
import time
from importlib import metadata
from pathlib import Path

#: Where the workflow points NUMBA_CACHE_DIR when the user has not set it: beside the package, in the
#: project's ``.cache`` folder (git-ignored), so install time and run time use one cache.
DEFAULT_CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "numba"
_STAMP_PREFIX = "mirflow-warm-"
_LOCK_NAME = "mirflow-warm.lock"
#: mirflow's own modules holding ``cache=True`` numba code (their source is part of the stamp key).
_OWN_JIT_MODULES = ("compat/timbral.py", "jitcache.py")


def configure(default: str | os.PathLike | None = None) -> Path:
    """Point ``NUMBA_CACHE_DIR`` at the shared mirflow cache unless the user set it; return the folder.

    Must run before numba is imported in this process to take effect here; child processes (Snakemake jobs)
    inherit the variable.
    """
    os.environ.setdefault("NUMBA_CACHE_DIR", str(default or DEFAULT_CACHE_DIR))
    return Path(os.environ["NUMBA_CACHE_DIR"])


def cache_dir() -> Path:
    """The numba cache folder processes of this environment use (``NUMBA_CACHE_DIR``, else the default)."""
    return Path(os.environ.get("NUMBA_CACHE_DIR") or DEFAULT_CACHE_DIR)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def stamp_key() -> str:
    """Hash of everything that decides whether a warm cache is still complete for this process."""
    from llvmlite import binding

    package = Path(__file__).resolve().parent
    parts = [sys.version, sys.platform, binding.get_host_cpu_name(), *(
        f"{d}={_version(d)}" for d in ("numba", "llvmlite", "librosa", "timbral_models", "numpy"))]
    parts += [hashlib.sha256((package / m).read_bytes()).hexdigest() for m in _OWN_JIT_MODULES]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def _signal(seconds: float, sample_rate: int, channels: int, seed: int):
    """A few seconds of tones over decaying noise bursts: onsets, pitch and a non-trivial spectrum."""
    import numpy as np

    from .audio import AudioSignal

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    mono = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 330 * t)
    mono += 0.3 * rng.standard_normal(t.size) * np.exp(-(t % 0.5) * 20)
    samples = np.tile(mono.astype(np.float32), (channels, 1))
    return AudioSignal(samples=samples, sample_rate=sample_rate, path="<warm-up>", decoder="synthetic")


def warm() -> list[str]:
    """Compile (or load) every cached numba function mirflow calls, in this process, one after the other.

    Runs the numba-using computations on short synthetic signals the way the families call them (the
    loader's float32 at two sample rates, stereo and mono), plus librosa's peak picking and onset detection
    on float32 and float64 input. Returns what it ran, for the log.
    """
    import librosa  # its guvectorize functions compile (or load) here, at import
    import librosa.onset
    import librosa.util
    import numpy as np

    from .compat.timbral import _compiled_envelope_kernel
    from .features.harmony import compute_harmony_stems
    from .features.timbral import TimbralParams, compute_timbral

    ran = []
    _compiled_envelope_kernel()
    for dtype in (np.float32, np.float64):
        x = np.random.default_rng(0).random(5000).astype(dtype)
        librosa.util.peak_pick(x, pre_max=3, post_max=3, pre_avg=3, post_avg=5, delta=0.1, wait=10)
        y = np.random.default_rng(1).standard_normal(22050 * 2).astype(dtype)
        librosa.onset.onset_detect(y=y, sr=22050, backtrack=True, units="samples")
        ran.append(f"librosa peak_pick/onset_detect ({np.dtype(dtype).name})")
    for sample_rate, channels in ((44100, 2), (22050, 1)):
        signal = _signal(4.0, sample_rate, channels, seed=sample_rate)
        compute_harmony_stems(signal)
        # reverb's isolated worker process would compile concurrently with this one: run it in-process.
        compute_timbral(signal, TimbralParams(isolated_models=()))
        ran.append(f"harmony_stems, timbral ({sample_rate} Hz, {channels} channel(s))")
    return ran


@contextlib.contextmanager
def _locked(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / _LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_warm(*, force: bool = False, log=None) -> bool:
    """Make sure this environment's numba cache is warm before this process imports librosa.

    Parameters
    ----------
    force : bool
        Warm even when the stamp says the cache is warm.
    log : callable, optional
        Receives one line of progress text when a warm-up runs.

    Returns
    -------
    bool
        True when this call ran the warm-up, False when the cache was already warm.
    """
    folder = cache_dir()
    try:
        key = stamp_key()
        stamp = folder / f"{_STAMP_PREFIX}{key}.json"
        if stamp.is_file() and not force:
            return False
        with _locked(folder):
            if stamp.is_file() and not force:  # another process warmed it while this one waited
                return False
            started = time.perf_counter()
            if log:
                log(f"warming the numba cache in {folder} (once per install; other jobs wait for it)")
            ran = warm()
            from .jsonio import write_json_atomic

            write_json_atomic(stamp, {"key": key, "ran": ran, "seconds": round(time.perf_counter() - started, 1)})
            return True
    except OSError as err:
        # A read-only or full cache folder: numba then compiles in memory, which cannot race. Say so once.
        print(f"mirflow: numba cache folder {folder} not usable ({err}); compiling in memory", file=sys.stderr)
        return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = configure()
    started = time.perf_counter()
    ran = ensure_warm(force="--force" in argv, log=print)
    print(f"numba cache {folder}: {'warmed' if ran else 'already warm'} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
