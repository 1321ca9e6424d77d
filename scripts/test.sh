#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this): installs what is missing, builds
# Release and runs every test, then builds with AddressSanitizer + UBSan and runs the tests
# again there (tests labelled `slow` are left out of the sanitizer pass), then builds the
# libFuzzer targets with clang and runs each for 20 s on its seeds (scripts/fuzz.sh).
# The Release pass also compiles the CUDA backend when the CUDA toolkit is installed
# (DSINFER_CUDA, see cmake/cuda.cmake); its tests (label `cuda`) need a GPU, so CI runs no
# `cuda` test, and the sanitizer pass builds without CUDA. ccache, where installed, caches
# every compiler. Tests run $(nproc) at a time, but those marked RUN_SERIAL (the mpi ones and
# a few that order events by their arrival: cmake/dsi.cmake) run alone.
#   scripts/test.sh            all three passes
#   SKIP_ASAN=1 scripts/test.sh   no sanitizer pass
#   SKIP_FUZZ=1 scripts/test.sh   no fuzz pass
set -euo pipefail
cd "$(dirname "$0")/.."
SKIP_BUILD=1 scripts/setup.sh

jobs=$(nproc)
launchers=()
if command -v ccache >/dev/null; then
  launchers=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
echo "== Release build and tests"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${launchers[@]}"
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure --timeout 900 --label-exclude cuda -j"$jobs"

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  echo "== AddressSanitizer + UBSan build and tests"
  # -O1 -g1 (line tables: what sanitizer reports print): the sanitizers' recommended level, and
  # half the compile time of -O2 -g on the server's Boost.Beast files (75.8 -> 35.8 s for
  # serve_command.cpp on CI's 2 cores), which keeps the whole run inside CI's 45 minutes; the
  # CPU backend and the tokenizer, where the tests spend their time, keep -O2 (their CMakeLists).
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDSINFER_SANITIZE=ON -DDSINFER_BENCH=OFF \
    -DDSINFER_CUDA=OFF -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
    "${launchers[@]}"
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure --timeout 1800 --label-exclude 'slow|cuda' -j"$jobs"
fi
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  # 20 s each: what keeps the whole run inside CI's 45 minutes (FUZZ_SECONDS overrides).
  echo "== libFuzzer targets, ${FUZZ_SECONDS:-20} s each"
  FUZZ_SECONDS=${FUZZ_SECONDS:-20} scripts/fuzz.sh
fi
echo "== all tests passed"
