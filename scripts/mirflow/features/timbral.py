"""Audio Commons timbral models: brightness, roughness, hardness, depth, booming,
reverberation, sharpness, warmth.

The values come from ``timbral_models`` 0.4.0 (AudioCommons, Pearce et al.,
2019), unmodified, run through :mod:`mirflow.compat.timbral`, a compatibility
layer scoped to each call (numpy 2 / librosa 0.11). Each model receives the
samples as an array shaped like ``soundfile.read`` returns a file (float64,
(frames, channels), or (frames,) for mono), so the results equal what the
library computes from the file path. The library itself sums the channels to
mono and loudness-normalises to -24 LUFS (except the reverb model, which
averages the RT60 of the first two channels).

Scales: the seven regression models give values on a nominal 0-100 scale that
real audio can leave; they are NOT clipped (the library's ``clip_output``
stays False). ``roughness`` is 0 by the library's own definition when its
mean roughness is below 0.01. ``reverberation`` is the reverb model's
logistic-regression probability that the audio sounds reverberant, times 100
(``timbral_reverb(..., dev_output=True)`` returns ``(mean RT60 in s,
probability)``; without ``dev_output`` it returns only 0 or 1). The RT60
estimate is recorded in ``meta["reverb_rt60_s"]``.

``timbral_reverb`` can run for an unbounded time, so it runs in a separate
Python process that is killed after ``params["reverb_timeout_s"]``; the key is
then absent with reason "timeout". A model that raises leaves its key absent
with the exception text as the reason (also listed in ``meta["errors"]``);
nothing is swallowed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import AudioSignal
from ..params import param
from ..result import FeatureResult
from . import Family

#: Output key -> ``timbral_models`` model name (``timbral_<name>``).
MODELS = {
    "brightness": "brightness",
    "roughness": "roughness",
    "hardness": "hardness",
    "depth": "depth",
    "booming": "booming",
    "reverberation": "reverb",
    "sharpness": "sharpness",
    "warmth": "warmth",
}
KEYS = tuple(MODELS)



@dataclass(frozen=True)
class TimbralParams:
    """Parameters of ``timbral`` (config section ``timbral``)."""

    models: tuple[str, ...] = param(KEYS, choices=KEYS, doc="Output keys to compute (any subset of the eight)")
    isolated_models: tuple[str, ...] = param(
        ("reverberation",), choices=KEYS, doc="Output keys computed in a separate process, killed after its timeout")
    reverb_timeout_s: float = param(300.0, unit="s", above=0.0, doc="Timeout of the isolated reverberation model")
    isolated_timeout_s: float = param(300.0, unit="s", above=0.0, doc="Timeout of any other isolated model")
    # Memoise repeated filter designs and per-window specific loudness, reduce arrays with numpy, filter the HPSS
    # spectrogram line by line and compile the envelope loop inside timbral_models (bit-identical results, 2.2x
    # faster on 3 min of audio; see mirflow.compat.timbral).
    speedups: bool = param(True, doc="Bit-identical speed-ups inside timbral_models (mirflow.compat.timbral)")
    # The library needs 0.4 s for its loudness normalisation and silently returns placeholder RT60s below ~0.2 s.
    min_duration_s: float = param(1.0, unit="s", minimum=0.4, doc="Shorter input is absent (\"too short\")")


def library_input(samples: np.ndarray) -> np.ndarray:
    """Samples laid out as ``soundfile.read`` would return them to timbral_models.

    Parameters
    ----------
    samples : np.ndarray
        (channels, frames), full scale 1.0.

    Returns
    -------
    np.ndarray
        float64, (frames,) for one channel, else (frames, channels).
    """
    samples = np.asarray(samples)
    if samples.shape[0] == 1:
        return samples[0].astype(np.float64)
    return np.ascontiguousarray(samples.T, dtype=np.float64)


def run_model_in_process(model: str, audio: np.ndarray, sample_rate: int,
                         speedups: bool) -> dict:
    """Run one library model here. Returns ``{"value": float, ...}``; exceptions propagate."""
    from ..compat.timbral_worker import run_model

    return run_model(model, audio, sample_rate, speedups)


def run_model_isolated(model: str, audio: np.ndarray, sample_rate: int, timeout_s: float,
                       speedups: bool) -> dict:
    """Run one library model in a child Python process, killed after ``timeout_s`` seconds.

    Returns
    -------
    dict
        ``{"value": float, ...}``, ``{"error": "<text>"}`` when the model
        raised or the process died, or ``{"timeout": True}``.
    """
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory(prefix="mirflow-timbral-") as tmp:
        in_path, out_path = os.path.join(tmp, "in.npy"), os.path.join(tmp, "out.json")
        # float32 halves the file when it is exact (always, for decoded audio); the
        # worker converts back to float64, so the model sees identical numbers.
        compact = audio.astype(np.float32)
        np.save(in_path, compact if np.array_equal(compact, audio) else audio)
        command = [sys.executable, "-m", "mirflow.compat.timbral_worker", model, str(int(sample_rate)),
                   in_path, out_path]
        if speedups:
            command.append("--speedups")
        try:
            completed = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                       timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"timeout": True}
        if os.path.exists(out_path):
            with open(out_path, encoding="utf-8") as handle:
                return json.load(handle)
        tail = completed.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        return {"error": f"worker process exited with code {completed.returncode} without a result: "
                         + " | ".join(tail)}


def compute_timbral(signal: AudioSignal, params: TimbralParams = TimbralParams()) -> FeatureResult:
    """The eight Audio Commons timbral attributes of one signal.

    Parameters
    ----------
    signal : AudioSignal
        Usually the full mix, any channel count and sample rate (the library
        upsamples below 44.1 kHz itself).
    params : TimbralParams, optional
        Models to run, their isolation and timeouts.

    Returns
    -------
    FeatureResult
        Keys of :data:`KEYS` on a nominal 0-100 scale (not clipped).
        ``meta`` records the library version, the model call for each key,
        which ran isolated and with what timeout, ``reverb_rt60_s`` and the
        ``errors`` of models that raised.
    """
    p = params
    result = FeatureResult()
    result.meta.update({
        "library": f"timbral_models {_library_version()}",
        "compat": "mirflow.compat.timbral (scoped: np.lib.pad, keyword-only librosa calls)",
        "input": "samples as soundfile.read returns them (float64, frames x channels); the library sums "
                 "channels to mono and loudness-normalises to -24 LUFS",
        "calls": {key: ("timbral_reverb(x, fs, dev_output=True)[1] * 100" if key == "reverberation"
                        else f"timbral_{MODELS[key]}(x, fs)") for key in p.models},
        "clipped": False,
        "speedups": bool(p.speedups),
        "isolated": {key: float(p.reverb_timeout_s if key == "reverberation" else p.isolated_timeout_s)
                     for key in p.models if key in p.isolated_models},
        "errors": {},
    })
    if signal.is_digital_silence():
        result.mark_all_absent(p.models, "silent")
        return result
    if signal.duration_s < p.min_duration_s:
        result.mark_all_absent(p.models, f"too short ({signal.duration_s:.2f} s < {p.min_duration_s} s)")
        return result

    audio = library_input(signal.samples)
    for key in p.models:
        model = MODELS[key]
        if key in p.isolated_models:
            timeout = p.reverb_timeout_s if key == "reverberation" else p.isolated_timeout_s
            outcome = run_model_isolated(model, audio, signal.sample_rate, float(timeout),
                                         bool(p.speedups))
        else:
            try:
                outcome = run_model_in_process(model, audio, signal.sample_rate, bool(p.speedups))
            except Exception as err:  # recorded as the key's reason and in meta, never dropped
                outcome = {"error": f"{type(err).__name__}: {err}"}
        _record(result, key, outcome, timeout_s=result.meta["isolated"].get(key))
    return result


def _record(result: FeatureResult, key: str, outcome: dict, timeout_s: float | None) -> None:
    if outcome.get("timeout"):
        result.mark_absent(key, "timeout")
        result.meta["errors"][key] = f"timeout after {timeout_s} s"
        return
    if "error" in outcome:
        result.mark_absent(key, outcome["error"])
        result.meta["errors"][key] = outcome["error"]
        return
    value = float(outcome["value"])
    if key == "reverberation":
        value *= 100.0
        if np.isfinite(outcome.get("rt60_s", np.nan)):
            result.meta["reverb_rt60_s"] = float(outcome["rt60_s"])
    if not np.isfinite(value):
        reason = f"timbral_models returned a non-finite value ({value})"
        result.mark_absent(key, reason)
        result.meta["errors"][key] = reason
        return
    result.set(key, value)


def _library_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("timbral_models")
    except PackageNotFoundError:
        return "unknown"


FAMILY = Family("timbral", 1, "mix", "timbral", "mirflow.features.timbral:compute_timbral",
                ("timbral-models", "librosa", "numpy", "scipy"), "Audio Commons timbral models", params=TimbralParams)
