#!/usr/bin/env bash
# Runs HERE (the build machine, Debian 12, no GPU): builds the CUDA-enabled Release and packs
# what the GPU machine needs to run it into one tarball: the CUDA test and benchmark binaries,
# dsinfer, and the shared libraries the GPU machine's image lacks (Debian's fmt, spdlog, ICU,
# PCRE2; glibc, libstdc++, libgomp and cuBLASLt are there, newer or the same). run.sh beside
# this file unpacks and runs it there.
#   scripts/device/pack.sh [DEST]    DEST: folder for dsinfer-device.tar.xz and run.sh
#                                    (default build/device-pack)
# To use the device tool, whose run sends /work/main's tree: pack into a folder of /work/main
# that .git/info/exclude ignores, e.g. DEST=/work/main/.devcarry/NAME, then call run with
# carry [".devcarry"] and the command `bash .devcarry/NAME/run.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=${1:-build/device-pack}
build=${BUILD_DIR:-build}

launchers=()
if command -v ccache >/dev/null; then
  launchers=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSINFER_CUDA=ON "${launchers[@]}" >/dev/null
bins=(cuda_ops_test cuda_no_gpu_test cuda_parity_test cuda_gemm_bench cuda_kernels_bench cuda_sampling_bench bench_decode bench_grammar dsinfer)
# The NCCL communicator's and the NCCL device collectives' tests, where the build found NCCL.
if grep -q '^build nccl_communicator_test' "$build/build.ninja" 2>/dev/null; then
  bins+=(nccl_communicator_test nccl_collectives_test)
fi
cmake --build "$build" -j"${JOBS:-2}" --target "${bins[@]}"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
for b in "${bins[@]}"; do cp "$build/bin/$b" "$stage/bin/"; done
# Libraries to carry: everything the binaries load except the C/C++ runtime, the dynamic
# loader, CUDA's own libraries and NCCL, which the GPU image provides, and OpenMPI's, which must
# be the GPU machine's own to talk to its mpirun.
ldd "${stage}"/bin/* | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|libgomp|ld-linux[^/]*|libcublas[^/]*|libcudart[^/]*|libnccl|libmpi|libopen-rte|libopen-pal|libhwloc|libevent[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done
git rev-parse HEAD > "$stage/COMMIT" 2>/dev/null || echo unknown > "$stage/COMMIT"
mkdir -p "$dest"
tar -C "$stage" -cJf "$dest/dsinfer-device.tar.xz" .
cp scripts/device/run.sh "$dest/run.sh"
mkdir -p "$dest/checks" && cp scripts/device/checks/*.sh "$dest/checks/"
echo "packed $(du -h "$dest/dsinfer-device.tar.xz" | cut -f1) into $dest: ${bins[*]} + $(ls "$stage/lib" | tr '\n' ' ')"
