#!/usr/bin/env bash
# Set up benchbench in ./.venv on a fresh machine: `bash scripts/setup.sh [--test]`.
#
# llama-cpp-python is compiled from source. A native build (-march=native)
# turns on llama.cpp's AMX kernels, which crash with SIGSEGV in
# ggml_backend_amx_mul_mat on some CPUs, so the build is made portable with
# GGML_NATIVE=OFF unless CMAKE_ARGS says otherwise. For a CUDA build, run e.g.
# CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_CUDA=on" bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
if [[ "${1:-}" == "--test" ]]; then
    extras="[test]"
    # the report test opens the page in headless Chromium (Debian's package)
    if ! command -v chromium >/dev/null; then
        if [[ $(id -u) -eq 0 ]]; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        else
            echo "note: install Debian's chromium (sudo apt-get install chromium) for the report page test" >&2
        fi
    fi
fi

python3 -m venv .venv
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".${extras}"

# pip reuses a wheel it built earlier whatever CMAKE_ARGS says now; refuse to
# keep a native build that carries the AMX kernels
if .venv/bin/python -c "import llama_cpp, sys; sys.exit('AMX' in llama_cpp.llama_print_system_info().decode())"; then
    echo "benchbench is set up in .venv"
else
    echo "rebuilding llama-cpp-python without native AMX kernels"
    .venv/bin/python -m pip install --quiet --force-reinstall --no-deps --no-cache-dir --no-binary llama-cpp-python \
        "llama-cpp-python==0.3.36"
fi
