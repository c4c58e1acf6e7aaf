"""Run one timbral_models model in its own process (``python -m mirflow.compat.timbral_worker``).

Used for models that can run for an unbounded time (``timbral_reverb``): the
parent kills this process when its timeout expires, which is the only reliable
way to stop pure-Python code that never returns.

Usage::

    python -m mirflow.compat.timbral_worker MODEL SAMPLE_RATE IN.npy OUT.json [--speedups]

``IN.npy`` holds the samples as the library expects them: float, shape
(frames,) or (frames, channels). ``OUT.json`` receives either
``{"value": <float>}`` (for ``reverb``: ``{"value": <probability>, "rt60_s": <s>}``)
or ``{"error": "<ExceptionType>: <message>"}``. Results go to a file, not to
stdout, because the library prints to stdout.
"""
from __future__ import annotations

import json
import sys

import numpy as np


def run_model(model: str, samples: np.ndarray, sample_rate: int, speedups: bool) -> dict:
    """Call ``timbral_models.timbral_<model>`` under the compatibility layer.

    Parameters
    ----------
    model : str
        Library model name: hardness, depth, brightness, roughness, warmth,
        sharpness, booming or reverb.
    samples : np.ndarray
        float64, (frames,) or (frames, channels), full scale 1.0.
    sample_rate : int
        Hz.
    speedups : bool
        See :func:`mirflow.compat.timbral.timbral_compat`.

    Returns
    -------
    dict
        ``{"value": float}``; for reverb also ``"rt60_s"`` (the library's mean
        blind RT60 estimate in seconds) with ``value`` = its probability (0-1).
    """
    import timbral_models

    from .timbral import timbral_compat

    function = getattr(timbral_models, f"timbral_{model}")
    with timbral_compat(speedups=speedups):
        if model == "reverb":
            rt60, probability = function(samples, fs=sample_rate, dev_output=True)
            return {"value": float(probability), "rt60_s": float(rt60)}
        return {"value": float(function(samples, fs=sample_rate))}


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    model, sample_rate, in_path, out_path = argv[:4]
    speedups = len(argv) == 5 and argv[4] == "--speedups"
    samples = np.load(in_path).astype(np.float64)
    try:
        result = run_model(model, samples, int(sample_rate), speedups)
    except Exception as err:  # reported to the parent, which records it as the reason
        result = {"error": f"{type(err).__name__}: {err}"}
    with open(out_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
