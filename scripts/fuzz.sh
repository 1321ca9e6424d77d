#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, in build-fuzz) and runs each for a bounded
# time on its checked-in seeds (fuzz/seeds/<target>), failing on the first crash. CI runs it
# from scripts/test.sh with 20 s per target; see fuzz/README.md.
#   scripts/fuzz.sh                  every target, FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=600 scripts/fuzz.sh fuzz_chat_request   one target, longer
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
all=(fuzz_http_request fuzz_completion_request fuzz_chat_request fuzz_tokenizer fuzz_chat_template)
targets=("${@:-${all[@]}}")

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DDSINFER_FUZZ=ON -DDSINFER_SANITIZE=ON -DDSINFER_TESTS=OFF -DDSINFER_BENCH=OFF >/dev/null
cmake --build build-fuzz --target "${targets[@]}"

declare -A seeds=([fuzz_http_request]=http_request [fuzz_completion_request]=completion_request
                  [fuzz_chat_request]=chat_request [fuzz_tokenizer]=tokenizer [fuzz_chat_template]=chat_template)
declare -A dicts=([fuzz_http_request]=http.dict [fuzz_completion_request]=json.dict [fuzz_chat_request]=json.dict)
summary=()
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  mkdir -p "$corpus"
  cp -n fuzz/seeds/"${seeds[$t]}"/* "$corpus"/
  args=(-max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1)
  [ -n "${dicts[$t]:-}" ] && args+=(-dict=fuzz/dict/"${dicts[$t]}")
  echo "== $t for $seconds s"
  log=build-fuzz/$t.log
  if ! build-fuzz/bin/"$t" "${args[@]}" -artifact_prefix=build-fuzz/"$t"- "$corpus" >"$log" 2>&1; then
    tail -60 "$log"
    echo "== $t FAILED (the crashing input is build-fuzz/$t-*)"
    exit 1
  fi
  summary+=("$t: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$') executions, 0 crashes")
done
printf '%s\n' "${summary[@]}"
