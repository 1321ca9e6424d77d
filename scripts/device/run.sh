#!/usr/bin/env bash
# Runs THERE (the GPU machine): unpacks the tarball pack.sh made beside this script, shows the
# GPU, checks that every binary finds its libraries, runs the CUDA tests (label `cuda`: every
# kernel against the CPU op, and the whole model on the four fixtures against their references:
# cuda_ops_test, cuda_parity_test), the OpenAI server tests against `dsinfer serve --device cuda
# --dtype float32` (tests/server, with the openai client from wheels in .whl when the repo root
# has them), the GEMM benchmark (copy bandwidth, bf16/FP8 peaks), the V2-Lite-shaped decode and
# prefill benchmark with dummy weights, and prints a summary table last. Logs go to $OUT (the
# device tool's folder that comes back), else to ./device-out. Run from the repo root.
#   bash run.sh [--tests-only | --bench-only] [extra gtest args for cuda_ops_test]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$PWD/device-out}
mkdir -p "$out"
mode=all
case "${1:-}" in --tests-only) mode=tests; shift ;; --bench-only) mode=bench; shift ;; esac
# PHASES picks what runs (default all): ops parity server gemm kernels decode v3 grammar serve topo parallel sanitize.
phases=" ${PHASES:-ops parity server gemm kernels decode v3 grammar serve topo parallel sanitize} "
want() { [[ "$phases" == *" $1 "* ]]; }
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
  timeout "${TEST_TIMEOUT_S:-200}" "$root/bin/$bin" "$@" > "$out/$name.log" 2>&1
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
  if want ops; then
  run_tests cuda_ops_test cuda_ops_test "$@"
  fi
  if want parity; then
  # Where the first GPU forward of a fixture stops, if it does: every launch traced.
  DSINFER_CUDA_TRACE=1 timeout 20 "$root/bin/dsinfer" logits --device cuda --model tests/data/tiny-v2-lite \
    --tokens 0,17,5 --out /tmp/l.st > "$out/trace_logits.log" 2>&1
  echo "traced logits: rc $? after $(grep -c 'cuda launch' "$out/trace_logits.log") launches; last: $(grep 'cuda launch' "$out/trace_logits.log" | tail -2 | tr '\n' ' ')"
  if command -v compute-sanitizer >/dev/null; then
    timeout 60 compute-sanitizer --tool memcheck "$root/bin/dsinfer" logits --device cuda --model tests/data/tiny-v3-fp8 \
      --tokens 0,17,5,9,11 --out /tmp/l2.st > "$out/memcheck_logits.log" 2>&1
    echo "memcheck of logits --device cuda: rc $? $(grep -E 'ERROR SUMMARY' "$out/memcheck_logits.log" | tail -1)"
    grep -m3 -A6 "Invalid\|Error" "$out/memcheck_logits.log" | head -30
  fi
  # Layer by layer, CPU against CUDA (bf16) on one fixture (docs/design/cuda_notes.md shows it).
  for dev in cpu cuda; do
    "$root/bin/dsinfer" --log-level warn logits --device $dev --model tests/data/tiny-v3-fp8 --tokens 0,17,5,9,11,3,7,1 \
      --out /tmp/l-$dev.st --dump-tensors '*' --dump-layers 0,1,2 --dump-dir /tmp/dump-$dev > "$out/dump_$dev.log" 2>&1
  done
  "$root/bin/dsinfer" compare-dumps /tmp/dump-cuda /tmp/dump-cpu > "$out/compare_dumps.txt" 2>&1
  echo "compare-dumps cuda vs cpu: rc $?"; head -60 "$out/compare_dumps.txt"
  # One test at a time, each bounded, so one that hangs costs only itself.
  for t in $("$root/bin/cuda_parity_test" --gtest_list_tests | awk '/^[^ ]/{s=$1} /^  /{print s $1}'); do
    TEST_TIMEOUT_S=25 DSINFER_DATA=$PWD/tests/data run_tests "parity_${t//\//_}" cuda_parity_test --gtest_filter="$t"
    grep -hE '^\[ parity' "$out/parity_${t//\//_}.log"
  done
  fi
  if want ops; then
  # cuBLASLt's own reasons when it refuses an FP8 problem (log level 3: hints).
  CUBLASLT_LOG_LEVEL=3 timeout 60 "$root/bin/cuda_ops_test" --gtest_filter='CudaGemm.Fp8ScaleLayout*' \
    > "$out/fp8_probe_cublaslt.log" 2>&1
  grep -iE "unsupported|not supported|must be|hint" "$out/fp8_probe_cublaslt.log" | sort | uniq -c | sort -rn | head -8
  grep -E "^  NVIDIA|sm_" "$out/cuda_ops_test.log" | head -2
  # The skinny decode kernels under memcheck: their loads run ahead of the math (grouped_gemv_mma.cu).
  # MEMCHECK_FILTER picks other cuda_ops_test cases.
  if command -v compute-sanitizer >/dev/null; then
    timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 "$root/bin/cuda_ops_test" \
      --gtest_filter="${MEMCHECK_FILTER:-CudaGemm.Skinny*}" > "$out/memcheck_skinny.log" 2>&1
    rc=$?
    rows+=("$(printf '%-22s rc %-3s %s' memcheck_skinny "$rc" "$(grep -E 'ERROR SUMMARY' "$out/memcheck_skinny.log" | tail -1)")")
  fi
  fi
fi
if [ "$mode" != tests ]; then
  echo "== benchmark"
  if want gemm; then
  timeout 240 "$root/bin/cuda_gemm_bench" > "$out/cuda_gemm_bench.log" 2>&1
  rows+=("$(printf '%-22s rc %-3s' cuda_gemm_bench "$?")")
  cat "$out/cuda_gemm_bench.log"
  fi
  # The copy bandwidth just measured is the roofline's bandwidth (bytes read + written / 2 ->
  # the read side is what weights stream at; the bench counts read + written, as the issue does).
  gbps=$(grep -oE 'copy[^0-9]*[0-9.]+ (GB|TB)/s' "$out/cuda_gemm_bench.log" 2>/dev/null | head -1 |
         awk '{v=$(NF-1); u=$NF; if (u ~ /TB/) v*=1000; print v}')
  gbps=${gbps:-${COPY_GBPS:-}}
  # The bf16 GEMM peak just measured (8192^3 through cuBLASLt): the prefill's FLOP ceiling.
  peak=$(awk '$1 == "square" && $2 == "bf16" {print $7}' "$out/cuda_gemm_bench.log" 2>/dev/null | head -1)
  peak=${peak:-${PEAK_TFLOPS:-}}
  if want kernels; then
  # MLA attention (both kernels) and MoE at the real models' shapes against their floors.
  timeout 120 "$root/bin/cuda_kernels_bench" > "$out/cuda_kernels_bench.log" 2>&1
  rows+=("$(printf '%-22s rc %-3s' cuda_kernels_bench "$?")")
  cat "$out/cuda_kernels_bench.log"
  fi
  if want decode; then
  # Once per decode path in one call (DSINFER_CUDA_SKINNY: 0 the cuBLASLt / tiled path, fma the
  # CUDA-core skinny kernels, mma the tensor-core ones, the default), each with one op-timed
  # step per batch and one op-timed prefill step of 8 x 2048 tokens (--profile);
  # SKINNY_RUNS picks the paths, DECODE_BATCHES the batch sizes (default 1,16,64).
  for skinny in ${SKINNY_RUNS:-0 fma mma}; do
    log="$out/bench_decode_v2_lite_skinny$skinny.log"
    echo "== V2-Lite shape, dummy bf16 weights, --device cuda, DSINFER_CUDA_SKINNY=$skinny (roofline at ${gbps:-host} GB/s)"
    DSINFER_CUDA_SKINNY=$skinny timeout 240 "$root/bin/bench_decode" --config assets/models/deepseek-v2-lite.json \
      --device cuda --batches ${DECODE_BATCHES:-1,16,64} --context 128 --steps 32 --prefill-len 2048 --prefill-seqs 8 --profile \
      ${gbps:+--bandwidth-gbps $gbps} ${peak:+--peak-tflops $peak} > "$log" 2>&1
    rows+=("$(printf '%-22s rc %-3s' "bench_decode_skinny$skinny" "$?")")
    # The figures, and the five largest ops of each batch's breakdown (the whole table is in the log).
    grep -E "^(model|backend|prefill|  batch| *[0-9]+ +[0-9.]+ |decode steps)" "$log"
    awk '/^(batch [0-9]+, one decode step|prefill step)/{print; n=0; next} /^  op /{next} /^  (device total|not on device)/{print; next}
         /^  [a-z]/{if (n++ < 6) print}' "$log"
  done
  # More runs of the same decode steps, each under its own environment: DECODE_ENVS is a list
  # of comma-separated assignments, e.g.
  # "DSINFER_CUDA_MLA=fma DSINFER_CUDA_SKINNY_LINEAR_ROWS=64,DSINFER_CUDA_MLA=fma"; no prefill
  # step unless ENV_PREFILL_SEQS gives its prompt count (e.g. 8, as above).
  for envs in ${DECODE_ENVS:-}; do
    log="$out/bench_decode_v2_lite_${envs//[^A-Za-z0-9]/_}.log"
    echo "== V2-Lite shape, dummy bf16 weights, --device cuda, ${envs//,/ }"
    env ${envs//,/ } timeout 240 "$root/bin/bench_decode" --config assets/models/deepseek-v2-lite.json \
      --device cuda --batches ${DECODE_BATCHES:-1,16,64} --context 128 --steps 32 --prefill-len 2048 \
      --prefill-seqs ${ENV_PREFILL_SEQS:-0} --profile ${gbps:+--bandwidth-gbps $gbps} ${peak:+--peak-tflops $peak} > "$log" 2>&1
    rows+=("$(printf '%-22s rc %-3s %s' bench_decode_env "$?" "$envs")")
    grep -E "^(prefill|  batch| *[0-9]+ +[0-9.]+ )" "$log"
    awk '/^(batch [0-9]+, one decode step|prefill step)/{print; n=0; next} /^  op /{next} /^  (device total|not on device)/{print; next}
         /^  [a-z]/{if (n++ < 6) print}' "$log"
  done
  # The same decode steps launched op by op (--enforce-eager: no CUDA graphs), no prefill, no
  # profile: the graphs' gain in the same call. EAGER_RUN=0 skips it.
  if [ "${EAGER_RUN:-1}" = 1 ]; then
    log="$out/bench_decode_v2_lite_eager.log"
    echo "== V2-Lite shape, --enforce-eager (no CUDA graphs), DSINFER_CUDA_SKINNY=${skinny:-mma}"
    DSINFER_CUDA_SKINNY=${skinny:-mma} timeout 150 "$root/bin/bench_decode" --config assets/models/deepseek-v2-lite.json \
      --device cuda --batches ${DECODE_BATCHES:-1,16,64} --context 128 --steps 32 --prefill-seqs 0 --enforce-eager \
      ${gbps:+--bandwidth-gbps $gbps} > "$log" 2>&1
    rows+=("$(printf '%-22s rc %-3s' bench_decode_eager "$?")")
    grep -E "^(  batch| *[0-9]+ +[0-9.]+ )" "$log"
  fi
  fi
  if want v3; then
  # A DeepSeek-V3-shaped slice in FP8 (bench/decode/deepseek-v3-slice.json: the real dimensions,
  # 3 dense layers and 5 MoE layers, 62 GB of weights generated on the host first), decode at
  # batch 1 and 64 and one prefill step of 2 x 2048 tokens, each with its op breakdown.
  log="$out/bench_decode_v3_slice_fp8.log"
  echo "== V3-shaped slice, dummy FP8 weights, --device cuda"
  timeout 300 "$root/bin/bench_decode" --config bench/decode/deepseek-v3-slice.json --fp8 --device cuda \
    --batches 1,64 --context 128 --steps 16 --prefill-len 2048 --prefill-seqs 2 --profile \
    ${gbps:+--bandwidth-gbps $gbps} ${peak:+--peak-tflops $peak} > "$log" 2>&1
  rows+=("$(printf '%-22s rc %-3s' bench_decode_v3_slice "$?")")
  grep -E "^(model|backend|prefill|  batch| *[0-9]+ +[0-9.]+ |decode steps)" "$log"
  awk '/^(batch [0-9]+, one decode step|prefill step)/{print; n=0; next} /^  op /{next} /^  (device total|not on device)/{print; next}
       /^  [a-z]/{if (n++ < 8) print}' "$log"
  fi
  if want grammar && [ -x "$root/bin/bench_grammar" ]; then
    echo "== grammar mask per token (the share of a decode step: compare with the step times above)"
    # --step-ms: the batch-64 decode step the skinny run above measured.
    step64=$(awk '$1 == 64 && NF >= 7 {print $2}' "$out/bench_decode_v2_lite_skinny${skinny:-mma}.log" 2>/dev/null | head -1)
    timeout 60 "$root/bin/bench_grammar" ${step64:+--step-ms $step64} > "$out/bench_grammar.log" 2>&1
    rows+=("$(printf '%-22s rc %-3s' bench_grammar "$?")")
    tail -15 "$out/bench_grammar.log"
  fi
fi
if want serve; then
  echo "== serve --device cuda, V2-Lite shape, bench at 1/16/64 streams (checks/serve_bench.sh)"
  ROOT=$root bash "$here/checks/serve_bench.sh"
fi
if want topo; then
  echo "== topo (checks/topo.sh)"
  DSINFER_BIN="$root/bin/dsinfer" bash "$here/checks/topo.sh"
fi
if want parallel; then
  echo "== two CUDA ranks on the one GPU (checks/parallel_gpu.sh)"
  ROOT=$root bash "$here/checks/parallel_gpu.sh"
fi
# The server tests take what time is left (DEADLINE_S seconds after the start, default 560).
if [ "$mode" != bench ] && want server; then
  if [ -d tests/server ]; then
  echo "== server tests on --device cuda --dtype float32"
  site=/tmp/dsinfer-pysite
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl \
      > "$out/pip.log" 2>&1 || echo "run.sh: wheel install failed (pip.log)"
  fi
  t0=$SECONDS
  for t in test_openai_api test_fixture_model test_preemption test_robustness test_admission test_hardening; do
    left=$((${DEADLINE_S:-560} - SECONDS))
    if [ $left -lt 40 ]; then rows+=("$(printf '%-22s skipped (out of time)' "$t")"); continue; fi
    PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} DSINFER_BIN="$root/bin/dsinfer" DSINFER_DATA=$PWD/tests/data \
      DSINFER_DEVICE_ARGS="--device cuda --dtype float32 --kv-cache-dtype float32" \
        DSINFER_SERVE_ARGS="--gpu-memory-utilization 0.3" PYTHONUNBUFFERED=1 \
      timeout $((left - 10)) python3 -m pytest -q -x -p no:cacheprovider "tests/server/$t.py" > "$out/server_$t.log" 2>&1
    rc=$?
    rows+=("$(printf '%-22s rc %-3s %s' "$t" "$rc" "$(tail -1 "$out/server_$t.log")")")
    [ $rc = 0 ] || grep -E "Error|error|FAILED|assert" "$out/server_$t.log" | head -20
  done
  rows+=("$(printf '%-22s %ss' "server tests total" $((SECONDS - t0)))")
fi
fi
# Last, so that a long sanitizer run costs only itself if the call runs out of time.
if [ "$mode" != bench ]; then
  if command -v compute-sanitizer >/dev/null && want sanitize && [ $SECONDS -lt 480 ]; then
    echo "== compute-sanitizer memcheck (elementwise and foundation tests)"
    timeout 90 compute-sanitizer --tool memcheck --error-exitcode 9 "$root/bin/cuda_ops_test" \
      --gtest_filter='CudaElementwise.*:CudaFoundation.Arena*:CudaFoundation.Pinned*' > "$out/memcheck.log" 2>&1
    rc=$?
    rows+=("$(printf '%-22s rc %-3s %s' memcheck "$rc" "$(grep -E 'ERROR SUMMARY' "$out/memcheck.log" | tail -1)")")
  fi
fi
echo "== summary"
printf '%s\n' "${rows[@]}"
