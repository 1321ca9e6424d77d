#!/usr/bin/env bash
# Runs THERE (the GPU machine): unpacks the tarball pack.sh made beside this script, shows the
# GPU, checks that every binary finds its libraries, runs the CUDA tests (label `cuda`: the
# cuda_ops_test binary, whole) and the GEMM benchmark, and prints a summary table last. Logs go
# to $OUT (the device tool's folder that comes back), else to ./device-out.
#   bash run.sh [--tests-only | --bench-only] [extra gtest args, e.g. --gtest_filter=CudaGemm.*]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$PWD/device-out}
mkdir -p "$out"
mode=all
case "${1:-}" in --tests-only) mode=tests; shift ;; --bench-only) mode=bench; shift ;; esac
root=$(mktemp -d /tmp/dsinfer-device.XXXX)
tar -C "$root" -xJf "$here/dsinfer-device.tar.xz" || { echo "run.sh: cannot unpack $here/dsinfer-device.tar.xz"; exit 1; }
echo "== dsinfer $(cat "$root/COMMIT")"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 | tee "$out/nvidia-smi.txt"

# cuBLASLt: the system's if the loader knows one, else the CUDA toolkit's or a Python wheel's.
libpath="$root/lib"
if ! ldconfig -p | grep -q 'libcublasLt.so.13'; then
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
           $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, s, "lib") for p in nvidia.__path__ for s in ("cu13", "cublas")))' 2>/dev/null); do
    if [ -e "$d/libcublasLt.so.13" ]; then libpath="$libpath:$d"; break; fi
  done
  if [ "$libpath" = "$root/lib" ]; then
    found=$(find /usr /opt -name 'libcublasLt.so.13' 2>/dev/null | head -1)
    [ -n "$found" ] && libpath="$libpath:$(dirname "$found")"
  fi
fi
echo "cuBLAS / NCCL the loader knows:"
ldconfig -p | grep -E 'libcublas(Lt)?\.so\.|libnccl\.so' | sed 's/^/  /'
export LD_LIBRARY_PATH="$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  for b in "$root"/bin/*; do echo "-- $(basename "$b")"; ldd "$b"; done
} > "$out/ldd.txt" 2>&1
if grep -q "not found" "$out/ldd.txt"; then
  echo "run.sh: missing libraries:"; grep -B20 "not found" "$out/ldd.txt" | grep -E "^--|not found"
fi
grep -E "^--|cublasLt|libstdc|libgomp" "$out/ldd.txt" | sed 's/^/  /'

if command -v cuobjdump >/dev/null; then
  echo "GPU code in cuda_ops_test: $(cuobjdump --list-elf "$root/bin/cuda_ops_test" 2>&1 | grep -o 'sm_[0-9a-z]*' | sort | uniq -c | tr '\n' ' ')"
fi

declare -a rows
run_tests() {  # name binary args...
  local name=$1 bin=$2; shift 2
  local t0=$SECONDS
  "$root/bin/$bin" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  local passed failed
  passed=$(grep -c '^\[       OK \]' "$out/$name.log")
  failed=$(grep -c '^\[  FAILED  \] [A-Za-z0-9_]*\.[A-Za-z0-9_]* (' "$out/$name.log")
  rows+=("$(printf '%-22s rc %-3s passed %-4s failed %-4s %4ss' "$name" "$rc" "$passed" "$failed" $((SECONDS - t0)))")
  grep -E '^\[  FAILED  \]|Failure|exception|error:|fp8 scale|    w |layouts right|alternative|    alt ' "$out/$name.log" | head -120
}

if [ "$mode" != bench ]; then
  echo "== tests"
  run_tests cuda_no_gpu_test cuda_no_gpu_test
  run_tests cuda_ops_test cuda_ops_test "$@"
  grep -E "^  NVIDIA|sm_" "$out/cuda_ops_test.log" | head -2
fi
if [ "$mode" != tests ]; then
  echo "== benchmark"
  timeout 150 "$root/bin/cuda_gemm_bench" > "$out/cuda_gemm_bench.log" 2>&1
  rows+=("$(printf '%-22s rc %-3s' cuda_gemm_bench "$?")")
  cat "$out/cuda_gemm_bench.log"
fi
# Last, so that a long sanitizer run costs only itself if the call runs out of time.
if [ "$mode" != bench ]; then
  if command -v compute-sanitizer >/dev/null && [ "${SANITIZE:-1}" = 1 ]; then
    echo "== compute-sanitizer memcheck (elementwise and foundation tests)"
    timeout 90 compute-sanitizer --tool memcheck --error-exitcode 9 "$root/bin/cuda_ops_test" \
      --gtest_filter='CudaElementwise.*:CudaFoundation.Arena*:CudaFoundation.Pinned*' > "$out/memcheck.log" 2>&1
    rc=$?
    rows+=("$(printf '%-22s rc %-3s %s' memcheck "$rc" "$(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tail -1)")")
  fi
fi
echo "== summary"
printf '%s\n' "${rows[@]}"
