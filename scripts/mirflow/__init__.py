"""mirflow: music-information-retrieval features for text-to-music training data."""
import os as _os

__version__ = "0.1.0"

# Every process that imports mirflow before numba (jobs, the worker, tests, the corpus tools) compiles into and
# loads from the one numba cache that mirflow.jitcache warms under a lock, never site-packages' __pycache__,
# where parallel first compiles leave mismatched files that crash every later process (numba issue 10128).
# A user's NUMBA_CACHE_DIR wins. Kept here, import-free, so a thin job client stays light.
_os.environ.setdefault(
    "NUMBA_CACHE_DIR",
    _os.path.join(_os.path.dirname(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))), ".cache", "numba"),
)
