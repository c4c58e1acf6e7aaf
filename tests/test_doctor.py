"""The doctor says whether the GPU-slot steps will really use a GPU, per runtime."""
from types import SimpleNamespace

from mirflow.doctor import llama_gpu_status, torch_gpu_status


def _torch(cuda=None, hip=None, available=False, name="Radeon RX 7900 XTX"):
    return SimpleNamespace(version=SimpleNamespace(cuda=cuda, hip=hip),
                           cuda=SimpleNamespace(is_available=lambda: available, get_device_name=lambda i: name))


def test_torch_gpu_status_names_the_build_and_the_device():
    assert torch_gpu_status(_torch(hip="6.4", available=True)).startswith("GPU Radeon RX 7900 XTX (ROCm 6.4)")
    assert torch_gpu_status(_torch(cuda="12.8", available=True, name="RTX 4080")).startswith(
        "GPU RTX 4080 (CUDA 12.8)")
    assert torch_gpu_status(_torch(cuda="12.8")) == "no GPU visible to this CUDA 12.8 of torch: those steps run on CPU"
    assert torch_gpu_status(_torch()).startswith("CPU-only build: stem separation, drums and aesthetics run on CPU")


def test_llama_gpu_status():
    assert "use the GPU" in llama_gpu_status(SimpleNamespace(llama_supports_gpu_offload=lambda: True))
    assert "-DGGML_HIP=on" in llama_gpu_status(SimpleNamespace(llama_supports_gpu_offload=lambda: False))


def test_this_installation_reports_its_real_torch_build():
    import torch

    line = torch_gpu_status(torch)
    if not torch.cuda.is_available():
        assert "run on CPU" in line
    else:
        assert line.startswith("GPU ")
