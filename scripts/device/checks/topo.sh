#!/usr/bin/env bash
# Runs THERE (the GPU machine): `dsinfer topo` and `dsinfer topo --json` (plus a --tp/--ep
# placement and `plan --gpus auto`) next to `nvidia-smi topo -m`, from the tarball pack.sh made
# beside this script, or from DSINFER_BIN when given. Outputs go to $OUT (else ./device-out):
# topo.txt, topo.json, topo-tp.txt, plan-auto.txt, nvidia-smi-topo.txt; docs/topo.md shows them.
#   bash topo.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$PWD/device-out}
mkdir -p "$out"
bin=${DSINFER_BIN:-}
if [ -z "$bin" ]; then
  tarball="$here/dsinfer-device.tar.xz"
  [ -e "$tarball" ] || tarball="$here/../dsinfer-device.tar.xz"
  root=$(mktemp -d /tmp/dsinfer-topo.XXXX)
  tar -C "$root" -xJf "$tarball" || { echo "topo.sh: cannot unpack $tarball"; exit 1; }
  bin="$root/bin/dsinfer"
  export LD_LIBRARY_PATH="$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
status=0
run() {  # file command...
  local file=$1; shift
  echo "== $*" | tee "$out/$file"
  "$@" >> "$out/$file" 2>&1; local rc=$?
  cat "$out/$file" | tail -n +2
  echo "(exit $rc)"
  [ $rc -eq 0 ] || status=1
}
run nvidia-smi-topo.txt nvidia-smi topo -m
run topo.txt "$bin" topo
run topo.json "$bin" topo --json
n=$(nvidia-smi -L 2>/dev/null | wc -l)
if [ "$n" -ge 2 ]; then run topo-tp.txt "$bin" topo --tp 2 --ep "$n"; fi
run plan-auto.txt "$bin" plan --model deepseek-v2-lite --gpus auto
# The JSON must parse and name as many GPUs as nvidia-smi lists.
python3 - "$out/topo.json" "$n" <<'PY' || status=1
import json, sys
lines = open(sys.argv[1]).read().splitlines()[1:]
j = json.loads("\n".join(lines))
assert j["available"], j
assert len(j["gpus"]) == int(sys.argv[2]), (len(j["gpus"]), sys.argv[2])
print("topo.json: ok,", len(j["gpus"]), "GPUs,", len(j["warnings"]), "warnings")
PY
exit $status
