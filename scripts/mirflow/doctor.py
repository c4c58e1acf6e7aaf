"""Print which optional capabilities this installation has (``python -m mirflow.doctor``)."""
from __future__ import annotations

import importlib
import shutil


CHECKS = [
    ("numpy", "numpy"), ("soundfile", "soundfile"), ("librosa", "librosa"),
    ("pyloudnorm", "pyloudnorm"), ("essentia", "essentia"), ("madmom", "madmom"),
    ("torch", "torch"), ("demucs", "demucs"), ("onnxruntime", "onnxruntime"),
    ("llama_cpp", "llama_cpp"), ("timbral_models", "timbral_models"),
    ("basic_pitch", "basic_pitch"), ("snakemake", "snakemake"),
]


def main() -> int:
    missing = []
    for label, module in CHECKS:
        try:
            importlib.import_module(module)
            status = "ok"
        except Exception as err:  # report every kind of import failure, do not hide it
            status = f"MISSING ({type(err).__name__}: {err})"
            missing.append(label)
        print(f"  {label:15s} {status}")
    print(f"  {'ffmpeg':15s} {'ok' if shutil.which('ffmpeg') else 'not found (not required)'}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
