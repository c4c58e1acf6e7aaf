"""Print which optional capabilities this installation has (``python -m mirflow.doctor``).

Besides the imports it says, per runtime, whether the steps of the GPU slot will
really run on a GPU: torch (stem separation, drum transcription, Audiobox
Aesthetics) and llama.cpp (Music Flamingo). A CPU-only build is not an error
(everything runs on CPU), but a user who passes ``--resources gpu=1`` should
know before an overnight run.
"""
from __future__ import annotations

import importlib
import shutil
from types import ModuleType

CHECKS = [
    ("numpy", "numpy"), ("soundfile", "soundfile"), ("librosa", "librosa"),
    ("pyloudnorm", "pyloudnorm"), ("essentia", "essentia"), ("madmom", "madmom"),
    ("torch", "torch"), ("demucs", "demucs"), ("onnxruntime", "onnxruntime"),
    ("llama_cpp", "llama_cpp"), ("timbral_models", "timbral_models"),
    ("basic_pitch", "basic_pitch"), ("snakemake", "snakemake"),
]


def torch_gpu_status(torch: ModuleType) -> str:
    """One line: the GPU torch will use (CUDA or ROCm build), or why the torch steps run on CPU."""
    hip = getattr(torch.version, "hip", None)
    build = f"ROCm {hip}" if hip else (f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build")
    if torch.cuda.is_available():
        return (f"GPU {torch.cuda.get_device_name(0)} ({build}): stem separation, drums and aesthetics use it "
                "with device auto")
    if hip or torch.version.cuda:
        return f"no GPU visible to this {build} of torch: those steps run on CPU"
    return ("CPU-only build: stem separation, drums and aesthetics run on CPU; for a GPU reinstall torch 2.13.0 "
            "from the CUDA or ROCm index (docs/install.md)")


def llama_gpu_status(llama_cpp: ModuleType) -> str:
    """One line: whether llama.cpp was built with GPU offload (Music Flamingo captions)."""
    if llama_cpp.llama_supports_gpu_offload():
        return "built with GPU offload: Music Flamingo captions use the GPU"
    return ("CPU build: Music Flamingo captions run on CPU; for a GPU reinstall it with "
            "CMAKE_ARGS=\"-DGGML_CUDA=on\" (NVIDIA) or \"-DGGML_HIP=on\" (AMD ROCm)")


def main() -> int:
    missing = []
    modules = {}
    for label, module in CHECKS:
        try:
            modules[label] = importlib.import_module(module)
            status = "ok"
        except Exception as err:  # report every kind of import failure, do not hide it
            status = f"MISSING ({type(err).__name__}: {err})"
            missing.append(label)
        print(f"  {label:15s} {status}")
    print(f"  {'ffmpeg':15s} {'ok' if shutil.which('ffmpeg') else 'not found (not required)'}")
    if "torch" in modules:
        print(f"  {'torch GPU':15s} {torch_gpu_status(modules['torch'])}")
    if "llama_cpp" in modules:
        print(f"  {'llama.cpp GPU':15s} {llama_gpu_status(modules['llama_cpp'])}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
