#!/usr/bin/env bash
# Runs THERE (the GPU machine), from the repo root, with the tarball's binaries unpacked at
# $ROOT (run.sh does it): `dsinfer serve --device cuda` on the real DeepSeek-V2-Lite shape
# with dummy bf16 weights, then `dsinfer bench` with the CUDA speed issue's load: prompts of
# 512 random tokens, 256 generated each (ignore_eos), 256 requests at 16 and at 64 concurrent
# streams and SERVE_C1_PROMPTS (default 16) at one stream (256 one after another would take
# ~4 minutes of the call's 10), then `bench plot` of the three results, the server's /metrics
# and startup log (memory by part, load-to-ready time) and, for the planner check, `dsinfer
# plan` for the same model on one H200. Outputs to $OUT.
set -uo pipefail
out=${OUT:-$PWD/device-out}
bin="$ROOT/bin/dsinfer"
model=/tmp/dsinfer-v2-lite
mkdir -p "$model" "$out/bench"
cp assets/models/deepseek-v2-lite.json "$model/config.json"
port=8123
get() { python3 -c "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$port$1', timeout=5).read().decode())"; }
"$bin" serve --model "$model" --load-format dummy --device cuda --port $port --max-num-seqs 64 \
  --max-num-batched-tokens ${MAX_BATCHED_TOKENS:-8192} \
  > "$out/serve_v2_lite.log" 2>&1 &
pid=$!
for _ in $(seq 1 240); do
  get /health >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.5
done
grep -E "weights:|workspace:|KV cache:|model ready|backend:" "$out/serve_v2_lite.log"
bench() {  # concurrency prompts
  timeout 150 "$bin" bench --base-url "http://127.0.0.1:$port" --num-prompts "$2" --input-len 512 --output-len 256 \
    --concurrency "$1" --num-warmups 1 --no-progress --save-result --result-dir "$out/bench" \
    --result-filename "c$1.json" > "$out/bench/c$1.txt" 2>&1
  echo "-- concurrency $1 (rc $?)"; grep -iE "throughput|ttft|itl|tpot" "$out/bench/c$1.txt" | head -8
}
bench 1 ${SERVE_C1_PROMPTS:-16}
bench 16 256
bench 64 256
get /metrics > "$out/metrics_v2_lite.txt"
grep -E "^dsinfer_device_memory_bytes|^vllm:kv_cache_usage_perc|^dsinfer_expert_load_imbalance" "$out/metrics_v2_lite.txt" | head -12
kill -TERM $pid; wait $pid
"$bin" bench plot "$out"/bench/c1.json "$out"/bench/c16.json "$out"/bench/c64.json --out "$out/bench_v2_lite_h200.svg" \
  > "$out/bench_plot.log" 2>&1
echo "bench plot: rc $?"
"$bin" plan --model deepseek-v2-lite --gpus 1xH200 > "$out/plan_v2_lite_h200.txt" 2>&1
head -40 "$out/plan_v2_lite_h200.txt"
