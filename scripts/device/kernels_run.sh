#!/usr/bin/env bash
# Runs THERE (the GPU machine), beside the tarball scripts/device/pack.sh made (with
# cuda_kernels_bench among its binaries): the MLA and MoE kernel tests (cuda_ops_test's CudaMla
# and CudaMoe suites), cuda_kernels_bench, then compute-sanitizer memcheck over the smaller
# tests and racecheck over dispatch's shared-memory sort. Every stage has its own time limit so
# the whole fits one device call of 6 minutes; logs go to $OUT, a summary table comes last.
#   bash kernels_run.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$PWD/device-out}
mkdir -p "$out"
root=$(mktemp -d /tmp/dsinfer-kernels.XXXX)
tar -C "$root" -xJf "$here/dsinfer-device.tar.xz" || { echo "cannot unpack $here/dsinfer-device.tar.xz"; exit 1; }
echo "== dsinfer $(cat "$root/COMMIT")"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv,noheader 2>&1
libpath="$root/lib"
if ! ldconfig -p | grep -q 'libcublasLt.so.13'; then
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
           $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, s, "lib") for p in nvidia.__path__ for s in ("cu13", "cublas")))' 2>/dev/null); do
    if [ -e "$d/libcublasLt.so.13" ]; then libpath="$libpath:$d"; break; fi
  done
fi
export LD_LIBRARY_PATH="$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ldd "$root/bin/cuda_ops_test" | grep "not found"
test_bin="$root/bin/cuda_ops_test"
rows=()
stage() {  # name seconds command...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  rows+=("$(printf '%-10s rc %-4s %4ss  %s' "$name" "$rc" $((SECONDS - t0)) "$(grep -E 'PASSED|FAILED  \] [0-9]|ERROR SUMMARY|RACECHECK SUMMARY' "$out/$name.log" | tr '\n' ' ')")")
}
stage tests 150 "$test_bin" --gtest_filter='CudaMla.*:CudaMoe.*'
grep -E '^\[  FAILED  \]|Failure|Expected|Which is|error' "$out/tests.log" | head -40
echo "== per-case errors (normalised, max abs / max |ref|, non-finite)"
grep '^\[result\]' "$out/tests.log" | sed 's/^\[result\] //'
stage bench 60 "$root/bin/cuda_kernels_bench" --reps 10
cat "$out/bench.log"
if command -v compute-sanitizer >/dev/null; then
  stage memcheck 90 compute-sanitizer --tool memcheck --error-exitcode 9 "$test_bin" \
    --gtest_filter='CudaMla.AttentionMatchesCpuOnMixedBatches:CudaMla.AbsorbAndExpandMatchCpu:CudaMoe.RouteMatchesCpuIncludingTies:CudaMoe.DispatchIsAStableSortByExpert'
  stage racecheck 25 compute-sanitizer --tool racecheck --error-exitcode 9 "$test_bin" \
    --gtest_filter='CudaMoe.DispatchIsAStableSortByExpert'
  grep -E "Error|error|hazard" "$out/memcheck.log" "$out/racecheck.log" | head -20
fi
echo "== summary"
printf '%s\n' "${rows[@]}"
