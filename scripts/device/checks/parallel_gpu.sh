#!/usr/bin/env bash
# Runs THERE (the GPU machine), from the repo root, with the tarball's binaries at $ROOT
# (run.sh's `parallel` phase): the GPU half of the parallel issue on the one GPU. Two CUDA ranks
# cannot share a GPU in an NCCL group, so the two ranks here use the MPI host communicator:
# TP2, EP2 and DP2 `dsinfer logits --device cuda --dtype float32` against the single-process
# CUDA run (max |diff| printed; bound 1e-5, as on the CPU), DP2 `generate` with three prompts
# spread over both ranks against each prompt alone, then the NCCL communicator's and the NCCL
# device collectives' one-rank tests, and `--device-collectives nccl` refused for two ranks on
# the one GPU (printed once, every rank non-zero). Outputs to $OUT.
set -uo pipefail
out=${OUT:-$PWD/device-out}
bin="$ROOT/bin/dsinfer"
mpi=(mpirun --oversubscribe --allow-run-as-root --mca btl_vader_single_copy_mechanism none)
tokens=0,17,5,9,11,3,7,1,200,31,64,2
status=0
for model in ${PARALLEL_MODELS:-tiny-v2-lite tiny-v2-group tiny-v3-fp8}; do
  "$bin" --log-level warn logits --device cuda --dtype float32 --model tests/data/$model --tokens $tokens \
    --out /tmp/one-$model.st > "$out/par_one_$model.log" 2>&1 || { echo "single $model failed"; status=1; }
  for layout in "-tp 2" "--expert-parallel-size 2" "-tp 2 --enable-expert-parallel" "-dp 2"; do
    tag=$(echo "$layout" | tr -d ' -')
    timeout 120 "${mpi[@]}" -np 2 "$bin" --log-level warn logits --device cuda --dtype float32 $layout \
      --model tests/data/$model --tokens $tokens --out /tmp/$tag-$model.st > "$out/par_${tag}_$model.log" 2>&1
    rc=$?
    diff=$(python3 - /tmp/one-$model.st /tmp/$tag-$model.st <<'PY' 2>&1
import json, struct, sys
def read(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    e = h["logits"]; s, t = e["data_offsets"]; raw = b[8 + n + s:8 + n + t]
    return struct.unpack("<%df" % (len(raw) // 4), raw)
a, b = read(sys.argv[1]), read(sys.argv[2])
assert len(a) == len(b), (len(a), len(b))
print("%.3g" % max(abs(x - y) for x, y in zip(a, b)))
PY
)
    echo "$model ${layout}: rc $rc, max |logit - single process| $diff (bound 1e-5)"
    [ $rc = 0 ] || { status=1; tail -5 "$out/par_${tag}_$model.log"; }
  done
  # Data-parallel attention: three prompts placed over the two DP ranks, each against itself alone.
  prompts=(0,17,5,9,11,3,7 1,200,31,64,2,8,8,8,9,10,11 4,4,5)
  alone=""
  for p in "${prompts[@]}"; do
    alone+=$("$bin" --log-level warn generate --device cuda --dtype float32 --model tests/data/$model --tokens $p \
      --max-tokens 16)$'\n'
  done
  dp=$(timeout 120 "${mpi[@]}" -np 2 "$bin" --log-level info generate --device cuda --dtype float32 -dp 2 \
    --model tests/data/$model --tokens ${prompts[0]} --tokens ${prompts[1]} --tokens ${prompts[2]} --max-tokens 16 \
    2> "$out/par_dp2_generate_$model.log")
  placed=$(grep -o "placed on DP rank [0-9]" "$out/par_dp2_generate_$model.log" | awk '{print $NF}' | tr '\n' ' ')
  if [ "$dp"$'\n' = "$alone" ]; then echo "$model -dp 2 generate: 3 prompts on DP ranks $placed equal to each alone"
  else echo "$model -dp 2 generate: DIFFERS (ranks $placed): '$dp' vs '$alone'"; status=1; fi
done
for t in nccl_communicator_test nccl_collectives_test; do
  [ -x "$ROOT/bin/$t" ] || continue
  timeout 120 "$ROOT/bin/$t" > "$out/$t.log" 2>&1 || status=1
  echo "$t: $(grep -E 'PASSED|FAILED' "$out/$t.log" | tr '\n' ' ')"
done
# Two ranks on one GPU cannot form an NCCL group: forced, it is a startup error naming the flag.
timeout 120 "${mpi[@]}" -np 2 "$bin" --log-level warn logits --device cuda -tp 2 --device-collectives nccl \
  --model tests/data/tiny-v2-lite --tokens $tokens --out /tmp/nccl-shared.st > "$out/par_nccl_shared.log" 2>&1
rc=$?
n=$(grep -c -- "--device-collectives nccl: ranks 0 and 1 share GPU" "$out/par_nccl_shared.log")
echo "--device-collectives nccl on a shared GPU: rc $rc, message printed $n time(s) (want non-zero, 1)"
{ [ $rc != 0 ] && [ "$n" = 1 ]; } || status=1
exit $status
