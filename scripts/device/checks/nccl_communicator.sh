#!/usr/bin/env bash
# Runs on the GPU machine: the NCCL communicator's one-rank tests (tests/parallel/
# nccl_communicator_test.cpp) and the MPI host communicator with two ranks beside them, from a
# CUDA build folder (default build/; the build must have found NCCL: "NCCL communicator: ..."
# in cmake's output). Logs to $OUT (else ./device-out).
#   bash scripts/device/checks/nccl_communicator.sh [BUILD_DIR]
set -uo pipefail
build=${1:-build}
out=${OUT:-$PWD/device-out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1
rc=0
timeout 120 "$build/bin/nccl_communicator_test" > "$out/nccl_communicator_test.log" 2>&1 || rc=1
tail -3 "$out/nccl_communicator_test.log"
timeout 120 mpirun --oversubscribe --allow-run-as-root --mca btl_vader_single_copy_mechanism none -np 2 \
  "$build/bin/communicator_test" > "$out/communicator_test_np2.log" 2>&1 || rc=1
tail -3 "$out/communicator_test_np2.log"
echo "nccl_communicator.sh: $([ $rc = 0 ] && echo ok || echo FAILED)"
exit $rc
