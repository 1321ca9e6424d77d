#!/usr/bin/env bash
# Installs everything dsinfer needs on a fresh Debian 12 machine, then builds it into build/.
# The CUDA backend additionally needs NVIDIA's CUDA toolkit (13.0, at /usr/local/cuda: nvcc,
# cudart, cuBLASLt), which Debian does not package; without it the build simply leaves the CUDA
# backend out (cmake/cuda.cmake).
#   scripts/setup.sh            packages + Python test tools + Release build
#   SKIP_BUILD=1 scripts/setup.sh   packages and test tools only
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git
  ccache                  # compiler cache: rebuilds on a reused machine (scripts/test.sh uses it)
  libboost-dev            # Boost.Asio / Beast: the HTTP server and the bench client (header-only)
  libpcre2-dev            # Unicode regexes of the tokenizer's pre-tokenizers (JIT)
  libicu-dev              # Unicode normalisation and character properties of the tokenizer
  nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
  libgtest-dev libgmock-dev
  libopenmpi-dev openmpi-bin   # multi-process runs (mpirun)
  clang libclang-rt-14-dev     # libFuzzer targets
  prometheus              # promtool: the tests check /metrics, the alert rules and their rule tests with it
  python3 python3-venv
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Python tools the tests use (the official openai client, Hugging Face tokenizers as the reference).
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt
# CUTLASS 4.2's C++ headers, which the CUDA backend's grouped expert GEMM compiles against
# (cmake/cuda.cmake finds them in .venv); only the headers are used, so none of the package's
# Python dependencies are installed.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps nvidia-cutlass==4.2.0.0

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build build
fi
