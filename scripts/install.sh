#!/usr/bin/env bash
# Creates .venv and installs mirflow's pinned dependency set into it. No root needed.
# Idempotent: `make` only calls it when envs/*.txt changed or .venv is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

"$PYTHON" - <<'PY' || { echo "mirflow needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
export PIP_CONSTRAINT="$PWD/envs/constraints.txt" PIP_DISABLE_PIP_VERSION_CHECK=1
pip() { "$VENV/bin/python" -m pip "$@"; }

if [ -n "${MIRFLOW_TORCH_INDEX:-}" ]; then
  # e.g. https://download.pytorch.org/whl/rocm6.4 for AMD GPUs; the pin still applies (2.13.0+rocm... matches).
  echo "[install] torch 2.13.0 from $MIRFLOW_TORCH_INDEX"
  pip install -q torch==2.13.0 --index-url "$MIRFLOW_TORCH_INDEX"
else
  echo "[install] torch 2.13.0 from the default index (see envs/constraints.txt)"
  pip install -q torch==2.13.0
fi
echo "[install] runtime set (envs/requirements.txt)"
pip install -q -r envs/requirements.txt
echo "[install] packages installed without their declared dependencies (envs/requirements-nodeps.txt)"
pip install -q --no-deps -r envs/requirements-nodeps.txt
if [ "${MIRFLOW_SKIP_LLM:-0}" != "1" ]; then
  # llama.cpp's default build is -march=native: on Sapphire Rapids that compiles its AMX kernels, which crash
  # with SIGSEGV at the first decode (ggml-org/llama.cpp#20824), and pip's wheel cache would carry a native build
  # to any other machine sharing the home folder. So on x86-64 we build a portable AVX2/FMA/F16C library
  # (GGML_NATIVE=OFF), unless CMAKE_ARGS already chooses, and cache the wheel under a key of requirement, flags
  # and machine: pip's own cache ignores CMAKE_ARGS and would reinstall a wheel built with other flags.
  if [ "$(uname -m)" = "x86_64" ] && [[ "${CMAKE_ARGS:-}" != *GGML_NATIVE* ]]; then
    export CMAKE_ARGS="-DGGML_NATIVE=OFF ${CMAKE_ARGS:-}"
  fi
  llm_key=$( (cat envs/requirements-llm.txt; echo "${CMAKE_ARGS:-}"; uname -m) | sha256sum | cut -c1-16)
  llm_wheels="${XDG_CACHE_HOME:-$HOME/.cache}/mirflow/wheels/llama-$llm_key"
  if ! ls "$llm_wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "[install] llama-cpp-python: compiling (CMAKE_ARGS=${CMAKE_ARGS:-}; ~4 min on 2 cores, once per machine)"
    CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
      pip wheel -q --no-deps --no-cache-dir -w "$llm_wheels.tmp" -r envs/requirements-llm.txt
    rm -rf "$llm_wheels" && mv "$llm_wheels.tmp" "$llm_wheels"
  fi
  echo "[install] llama-cpp-python from $llm_wheels"
  pip install -q --force-reinstall --no-deps "$llm_wheels"/llama_cpp_python-*.whl
  pip install -q -r envs/requirements-llm.txt  # its dependencies (already met: a no-op after the first install)
fi
echo "[install] mirflow package (editable)"
pip install -q --no-deps -e .
# Compile every cached numba function once, in one process, before any parallel run can race on an empty
# cache (numba issue 10128 crashed parallel first runs with SIGSEGV): see scripts/mirflow/jitcache.py.
echo "[install] numba cache warm-up (~20 s)"
"$VENV/bin/python" -m mirflow.jitcache

if ! command -v ffmpeg >/dev/null 2>&1; then
  echo "[install] note: no ffmpeg on PATH. Not needed: every format (m4a/aac too) is decoded in-process."
fi
"$VENV/bin/python" -m mirflow.doctor || true
