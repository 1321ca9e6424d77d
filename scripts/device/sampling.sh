#!/usr/bin/env bash
# Runs THERE (the GPU machine): the GPU sampler's checks and timings from the tarball pack.sh
# made beside this script: the no-GPU test, the CudaSampling tests, cuda_sampling_bench, and
# compute-sanitizer's memcheck and racecheck on the small sampling tests. Logs to $OUT (else
# ./device-out); a summary table last.
#   bash sampling.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$PWD/device-out}
mkdir -p "$out"
root=$(mktemp -d /tmp/dsinfer-sampling.XXXX)
tar -C "$root" -xJf "$here/dsinfer-device.tar.xz" || { echo "sampling.sh: cannot unpack"; exit 1; }
echo "== dsinfer $(cat "$root/COMMIT")"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1
export LD_LIBRARY_PATH="$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
declare -a rows
step() {  # name timeout command...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  rows+=("$(printf '%-20s rc %-4s %4ss  %s' "$name" "$rc" $((SECONDS - t0)) "$(grep -E '^\[  (PASSED|FAILED)  \]|ERROR SUMMARY|RACECHECK SUMMARY' "$out/$name.log" | tr '\n' ' ' | cut -c1-90)")")
  grep -E '^\[  FAILED  \]|Failure|Expected|Which is|  row |random seed|error' "$out/$name.log" | head -40
}
step no_gpu_test 60 "$root/bin/cuda_no_gpu_test"
step sampling_test 150 "$root/bin/cuda_ops_test" --gtest_filter='CudaSampling.*'
echo "== cuda_sampling_bench"
step bench 90 "$root/bin/cuda_sampling_bench"
cat "$out/bench.log"
if command -v compute-sanitizer >/dev/null; then
  small='CudaSampling.NonFinite*:CudaSampling.GraphReplay*'
  step memcheck 60 compute-sanitizer --tool memcheck --error-exitcode 9 "$root/bin/cuda_ops_test" --gtest_filter="$small"
  step racecheck 90 compute-sanitizer --tool racecheck --error-exitcode 9 "$root/bin/cuda_ops_test" --gtest_filter="$small"
fi
echo "== summary"
printf '%s\n' "${rows[@]}"
