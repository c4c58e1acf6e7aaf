"""Run ``timbral_models`` 0.4.0 (AudioCommons, 2019) on numpy 2 and librosa 0.11.

The package breaks on current libraries in exactly four calls (read from its
installed source):

* ``np.lib.pad`` in ``Timbral_Hardness`` and ``Timbral_Roughness``: removed in
  numpy 2 (``np.pad`` is the same function);
* ``librosa.onset.onset_strength(audio, fs)`` in ``Timbral_Hardness`` and
  ``timbral_util``, ``librosa.onset.onset_detect(audio, fs, ...)`` in
  ``timbral_util`` and ``librosa.core.resample(audio, fs, lowest_fs)`` in
  ``timbral_util``: librosa >= 0.10 made these arguments keyword-only.

:func:`timbral_compat` is a context manager that, while active, rebinds the
global names ``np`` and ``librosa`` *inside the timbral_models modules only*
to thin proxies that add the missing spellings and forward every other
attribute to the real module. On exit the original bindings are restored. The
real ``numpy`` and ``librosa`` modules are never touched, so nothing outside
the ``with`` block (and no other thread's numpy) sees a difference.

Optional speed-ups (``speedups=True``), both bit-for-bit identical in result:

* ``timbral_util`` designs the same Butterworth and Chebyshev filters again for
  every analysis window (its ISO 532 B specific-loudness routine runs once per
  window and re-designs 30 third-octave filters each time; this was about a
  third of the whole run time). While the block is active its ``butter`` /
  ``scipy.signal.butter`` / ``scipy.signal.cheby1`` names are bound to
  memoised versions that return the coefficient arrays computed for the first
  identical call (read-only, so a caller that tried to modify them would fail
  loudly). Filter design is a pure function of its arguments.
* ``timbral_util.get_percussive_audio`` (hardness) separates harmonic and
  percussive parts with ``librosa.decompose.hpss`` at its defaults, whose two
  31-point median filters over the whole spectrogram were a third of the
  hardness run time. Under ``speedups`` the timbral modules see an ``hpss``
  that computes the same filters row by row with SciPy's one-dimensional rank
  filter (several times faster, identical values) and combines them exactly as
  librosa does; any call with other arguments goes to librosa's own ``hpss``.
* ``timbral_util.sample_and_hold_envelope_calculation`` (depth, hardness,
  warmth) is a per-sample Python loop. Under ``speedups`` the same state
  machine runs compiled with numba (already installed as a librosa
  dependency) for 1-D float64 input, with the same float64 operations in the
  same order, so the envelope is identical; other input goes to the original.
* ``timbral_util.specific_loudness`` (ISO 532 B per 4096-sample window) is
  computed for the same windows of the same loudness-normalised audio by
  booming (twice), sharpness, warmth and hardness. Under ``speedups`` its
  results are memoised by window content (128-bit BLAKE2 digest of the bytes,
  with dtype, shape and the other arguments) for the life of the process,
  bounded to :data:`LOUDNESS_CACHE_MAX` windows; callers get their own copy of
  the returned array. A pure function called again on identical input, so the
  values are identical.
* ``Timbral_Reverb`` and ``timbral_util`` call Python's builtin ``max``/``min``
  on numpy arrays inside per-frame loops, which iterates element by element.
  Module-level ``max``/``min`` names are added to those two modules (shadowing
  the builtins there only) that use ``np.max``/``np.min`` for a single
  non-empty 1-D numeric array without NaN and a non-zero result (the cases
  where both return the same element value; a zero result could be a signed
  zero tie, which falls back), and the builtin for everything else.

The proxies forward the positional arguments to the keyword names the old
librosa API used (``y, sr`` and ``y, orig_sr, target_sr``), so results are
identical to running the library on the library versions it was written for
with those keywords.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypedDict

import librosa
import librosa.decompose
import librosa.onset
import numpy as np
import scipy
import scipy.ndimage
import scipy.signal

#: The timbral_models modules whose globals are rebound.
PATCHED_MODULES = (
    "timbral_models.timbral_util",
    "timbral_models.Timbral_Brightness",
    "timbral_models.Timbral_Depth",
    "timbral_models.Timbral_Hardness",
    "timbral_models.Timbral_Roughness",
    "timbral_models.Timbral_Warmth",
    "timbral_models.Timbral_Sharpness",
    "timbral_models.Timbral_Booming",
    "timbral_models.Timbral_Reverb",
    "timbral_models.Timbral_Extractor",
)

_lock = threading.RLock()
_depth = 0
_speedups_active = False
_ABSENT = object()
_saved: list[tuple[types.ModuleType, str, object]] = []


class _ModuleProxy(types.ModuleType):
    """A module stand-in: its own attributes first, then the wrapped module's."""

    def __init__(self, target: types.ModuleType, **overrides):
        super().__init__(target.__name__, getattr(target, "__doc__", None))
        object.__setattr__(self, "_target", target)
        for name, value in overrides.items():
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails, i.e. for everything not overridden.
        # Remember the answer: the models look names up in hot loops.
        value = getattr(object.__getattribute__(self, "_target"), name)
        object.__setattr__(self, name, value)
        return value


def _onset_strength(y=None, sr=22050, *args, **kwargs):
    return librosa.onset.onset_strength(*args, y=y, sr=sr, **kwargs)


def _onset_detect(y=None, sr=22050, *args, **kwargs):
    return librosa.onset.onset_detect(*args, y=y, sr=sr, **kwargs)


def _resample(y, orig_sr=None, target_sr=None, **kwargs):
    return librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr, **kwargs)


def median_filter_along_axis(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``scipy.ndimage.median_filter(x, size=<size along axis, 1 elsewhere>, mode="reflect")`` of a 2-D array.

    Computed line by line with SciPy's one-dimensional rank filter, which is
    much faster than its n-dimensional one for the same footprint; a footprint
    of extent 1 across lines makes the lines independent, so values are
    identical (tested).
    """
    lines = np.moveaxis(np.asarray(x), axis, -1)
    out = np.empty(lines.shape, dtype=lines.dtype)
    for i in range(lines.shape[0]):
        out[i] = scipy.ndimage.median_filter(lines[i], size=size, mode="reflect")
    return np.moveaxis(out, -1, axis)


class _HpssDefaults(TypedDict):
    kernel_size: int
    power: float
    mask: bool
    margin: float


#: The arguments librosa's hpss defaults to, which :func:`hpss_default_fast` reproduces.
_HPSS_DEFAULTS: _HpssDefaults = {"kernel_size": 31, "power": 2.0, "mask": False, "margin": 1.0}


def _librosa_hpss_defaults() -> dict:
    params = inspect.signature(librosa.decompose.hpss).parameters
    return {name: params[name].default for name in _HPSS_DEFAULTS if name in params}


def hpss_default_fast(S, **kwargs):
    """``librosa.decompose.hpss(S)`` for a 2-D spectrogram at librosa's default arguments, faster.

    Same steps as librosa (magnitude/phase split, a horizontal and a vertical
    31-point median filter with reflected edges, soft masks of power 2 with
    zeros split evenly, masks applied to the magnitude, phase restored); only
    the median filters are computed by :func:`median_filter_along_axis`. Any
    other call, or a librosa whose defaults differ, goes to librosa's ``hpss``.
    """
    if kwargs or np.ndim(S) != 2 or _librosa_hpss_defaults() != _HPSS_DEFAULTS:
        return librosa.decompose.hpss(S, **kwargs)
    phase: np.ndarray | int
    if np.iscomplexobj(S):
        S, phase = librosa.magphase(S)
    else:
        phase = 1
    size = _HPSS_DEFAULTS["kernel_size"]
    harm = np.empty_like(S)
    harm[:] = median_filter_along_axis(S, size, axis=-1)
    perc = np.empty_like(S)
    perc[:] = median_filter_along_axis(S, size, axis=-2)
    power = _HPSS_DEFAULTS["power"]
    mask_harm = librosa.util.softmask(harm, perc, power=power, split_zeros=True)
    mask_perc = librosa.util.softmask(perc, harm, power=power, split_zeros=True)
    return (S * mask_harm) * phase, (S * mask_perc) * phase


def _not_installed(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("mirflow.compat.timbral: the library function is captured by _install(speedups=True), "
                       "which has not run")


_envelope_kernel = None
#: The library's envelope function, captured when the speed-ups are installed.
_original_envelope: Callable[..., Any] = _not_installed


def _compiled_envelope_kernel():
    """The numba-compiled envelope loop, compiled once per process (cached on disk when possible)."""
    global _envelope_kernel
    if _envelope_kernel is not None:
        return _envelope_kernel
    import numba

    def kernel(abs_samples, decay, hold_samples):
        envelope = np.empty_like(abs_samples)
        previous = 0.0
        hold_counter = 0
        for i in range(abs_samples.size):
            sample = abs_samples[i]
            if sample >= previous:
                envelope[i] = sample
                previous = sample
                hold_counter = 0
            elif hold_counter < hold_samples:
                hold_counter += 1
                envelope[i] = previous
            else:
                out = previous - decay
                if out > sample:
                    envelope[i] = out
                    previous = out
                else:
                    envelope[i] = sample
                    previous = sample
        return envelope

    try:
        compiled = numba.njit(cache=True)(kernel)
        compiled(np.zeros(2), 0.0, 0.0)
    except RuntimeError:  # no writable cache location: compile in memory only
        compiled = numba.njit(cache=False)(kernel)
    _envelope_kernel = compiled
    return compiled


def sample_and_hold_envelope_fast(audio_samples, fs, decay_time=0.2, hold_time=0.01):
    """``timbral_util.sample_and_hold_envelope_calculation`` for 1-D float64 input, compiled.

    Same arguments and the same result (bit for bit): the decay rate is the peak
    divided by ``decay_time * fs``, the hold length ``hold_time * fs`` samples,
    and each sample follows the library's rise / hold / decay rules in order.
    Other input (and input with NaN, where the builtin ``max`` the library uses
    depends on element order) is passed to the library's own function.
    """
    if not (type(audio_samples) is np.ndarray and audio_samples.ndim == 1 and audio_samples.size
            and audio_samples.dtype == np.float64):
        return _original_envelope(audio_samples, fs, decay_time, hold_time)
    abs_samples = np.abs(audio_samples)
    if np.isnan(abs_samples).any():
        return _original_envelope(audio_samples, fs, decay_time, hold_time)
    decay = abs_samples.max() / (decay_time * fs)
    return _compiled_envelope_kernel()(abs_samples, float(decay), float(hold_time * fs))


#: Most windows kept by :func:`specific_loudness_memoised` (about 2 KB each: at most ~100 MB, enough for
#: 77 min of 44.1 kHz audio; longer input is still correct, only slower).
LOUDNESS_CACHE_MAX = 50000
_loudness_cache: OrderedDict = OrderedDict()
#: The library's specific_loudness, captured when the speed-ups are installed.
_original_specific_loudness: Callable[..., Any] = _not_installed


def _typed(value):
    return (type(value).__name__, _hashable(value))


def specific_loudness_memoised(x, Pref, fs, Mod):
    """``timbral_util.specific_loudness`` with results shared between calls on identical windows.

    Returns the library's ``(N_entire, N_single)``; ``N_single`` is a fresh
    copy on every call, so a caller that modifies it cannot affect another.
    Input that is not a numpy array goes straight to the library.
    """
    if type(x) is not np.ndarray:
        return _original_specific_loudness(x, Pref, fs, Mod)
    digest = hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=16).digest()
    key = (x.dtype.str, x.shape, digest, _typed(Pref), _typed(fs), _typed(Mod))
    hit = _loudness_cache.get(key)
    if hit is not None:
        _loudness_cache.move_to_end(key)
        return hit[0], hit[1].copy()
    n_entire, n_single = _original_specific_loudness(x, Pref, fs, Mod)
    _loudness_cache[key] = (n_entire, np.array(n_single, copy=True))
    if len(_loudness_cache) > LOUDNESS_CACHE_MAX:
        _loudness_cache.popitem(last=False)
    return n_entire, n_single


def _hashable(value):
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def memoised_filter_design(design):
    """Wrap a scipy filter-design function so identical calls share one result.

    Parameters
    ----------
    design : callable
        e.g. ``scipy.signal.butter``; must return a tuple of arrays (``ba``
        output) and be a pure function of its arguments.

    Returns
    -------
    callable
        Same signature; returned arrays are read-only and shared between calls.
    """
    cache: dict = {}

    def wrapper(*args, **kwargs):
        key = (_hashable(args), _hashable(tuple(sorted(kwargs.items()))))
        if key in cache:
            return cache[key]
        result = design(*args, **kwargs)
        if isinstance(result, tuple):
            for array in result:
                if isinstance(array, np.ndarray):
                    array.setflags(write=False)
        cache[key] = result
        return result

    functools.update_wrapper(wrapper, design, assigned=(), updated=())  # sets wrapper.__wrapped__ only
    wrapper.cache = cache  # type: ignore[attr-defined]  # a function attribute, as functools.lru_cache has
    return wrapper


#: Arrays shorter than this are reduced by the builtin (faster for tiny arrays; same result).
ARRAY_REDUCTION_MIN_SIZE = 48


def array_aware(builtin, reduction):
    """A drop-in for builtin ``max``/``min`` that reduces plain 1-D numeric arrays with numpy.

    Parameters
    ----------
    builtin : callable
        ``max`` or ``min``.
    reduction : callable
        ``np.max`` or ``np.min``.

    Returns
    -------
    callable
        Same results as ``builtin`` for every input (see the module docstring).
    """

    def reduce(*args, **kwargs):
        if len(args) == 1 and not kwargs:
            values = args[0]
            # Below ~40 elements the builtin is faster than numpy's call overhead.
            if (type(values) is np.ndarray and values.ndim == 1 and values.size >= ARRAY_REDUCTION_MIN_SIZE
                    and values.dtype.kind in "fiu"
                    and not (values.dtype.kind == "f" and np.isnan(values).any())):
                result = reduction(values)
                if result != 0:
                    return result
        return builtin(*args, **kwargs)

    functools.update_wrapper(reduce, builtin, assigned=(), updated=())  # sets reduce.__wrapped__ only
    return reduce


#: Modules given array-aware max/min under ``speedups``.
_REDUCTION_MODULES = ("timbral_models.Timbral_Reverb", "timbral_models.timbral_util")


def _numpy_proxy() -> _ModuleProxy:
    return _ModuleProxy(np, lib=_ModuleProxy(np.lib, pad=np.pad))


def _librosa_proxy(speedups: bool = False) -> _ModuleProxy:
    onset = _ModuleProxy(librosa.onset, onset_strength=_onset_strength, onset_detect=_onset_detect)
    core = _ModuleProxy(librosa.core, resample=_resample)
    if not speedups:
        return _ModuleProxy(librosa, onset=onset, core=core, resample=_resample)
    decompose = _ModuleProxy(librosa.decompose, hpss=hpss_default_fast)
    return _ModuleProxy(librosa, onset=onset, core=core, resample=_resample, decompose=decompose)


def _install(speedups: bool) -> None:
    global _original_envelope, _original_specific_loudness
    numpy_proxy, librosa_proxy = _numpy_proxy(), _librosa_proxy(speedups)
    replacements = {id(np): numpy_proxy, id(librosa): librosa_proxy}
    if speedups:
        butter = memoised_filter_design(scipy.signal.butter)
        cheby1 = memoised_filter_design(scipy.signal.cheby1)
        signal_proxy = _ModuleProxy(scipy.signal, butter=butter, cheby1=cheby1)
        replacements[id(scipy)] = _ModuleProxy(scipy, signal=signal_proxy)
        replacements[id(scipy.signal.butter)] = butter
    for module_name in PATCHED_MODULES:
        module = importlib.import_module(module_name)
        for name, value in list(vars(module).items()):
            replacement = replacements.get(id(value))
            if replacement is not None:
                _saved.append((module, name, value))
                setattr(module, name, replacement)
    if speedups:
        util: Any = importlib.import_module("timbral_models.timbral_util")  # untyped: its functions are set below
        _original_envelope = util.sample_and_hold_envelope_calculation
        _saved.append((util, "sample_and_hold_envelope_calculation", _original_envelope))
        util.sample_and_hold_envelope_calculation = sample_and_hold_envelope_fast
        _original_specific_loudness = util.specific_loudness
        _saved.append((util, "specific_loudness", _original_specific_loudness))
        util.specific_loudness = specific_loudness_memoised
        fast = {"max": array_aware(max, np.max), "min": array_aware(min, np.min)}
        for module_name in _REDUCTION_MODULES:
            module = importlib.import_module(module_name)
            for name, function in fast.items():
                _saved.append((module, name, vars(module).get(name, _ABSENT)))
                setattr(module, name, function)


def _uninstall() -> None:
    while _saved:
        module, name, value = _saved.pop()
        if value is _ABSENT:
            delattr(module, name)
        else:
            setattr(module, name, value)


@contextmanager
def timbral_compat(speedups: bool = False) -> Iterator[None]:
    """Make ``timbral_models`` callable on numpy 2 / librosa 0.11 inside the block.

    Re-entrant and thread-safe: nested or concurrent blocks share one
    installation, removed when the outermost block exits (even on error).

    Parameters
    ----------
    speedups : bool
        Also memoise repeated filter designs and reduce arrays with numpy
        (identical results, faster; see the module docstring). A nested block
        cannot change the choice of the outermost one: asking for a different
        setting while a block is open raises ``RuntimeError``.

    Examples
    --------
    >>> from mirflow.compat.timbral import timbral_compat
    >>> import timbral_models
    >>> with timbral_compat():                                  # doctest: +SKIP
    ...     hardness = timbral_models.timbral_hardness(x, fs=44100)
    """
    global _depth, _speedups_active
    with _lock:
        if _depth == 0:
            _install(speedups)
            _speedups_active = speedups
        elif speedups != _speedups_active:
            raise RuntimeError(
                f"timbral_compat(speedups={speedups}) requested while a block with "
                f"speedups={_speedups_active} is open"
            )
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _uninstall()


def is_active() -> bool:
    """True while some ``timbral_compat`` block is open."""
    return _depth > 0
