#!/usr/bin/env bash
# Data-parallel scaling on one machine (docs/distributed.md): the same global batch as
#   A: 1 process  x 2 threads, batch B
#   B: 2 processes x 1 thread, batch B/2 each, --sync-bn
#   C: 2 processes x 1 thread, batch B/2 each, per-rank BatchNorm
# Prints each run's training images/s (first epoch line) and the all-reduce line rank 0 logs.
# Usage: bench/ddp_scaling.sh [DATA_DIR] (default /work/shared/data/hc18); LEANSEG, OUT,
# EPOCHS, BATCH, PRESET, EXTRA (more train options) override the defaults.
set -euo pipefail
LEANSEG=${LEANSEG:-build/leanseg}
DATA=${1:-/work/shared/data/hc18}
OUT=${OUT:-bench-out/ddp_scaling}
EPOCHS=${EPOCHS:-1}
BATCH=${BATCH:-8}
PRESET=${PRESET:-demo}
rm -rf "$OUT"
mkdir -p "$OUT"
common="train --preset $PRESET --data $DATA --epochs $EPOCHS --seed 1 ${EXTRA:-}"
run() {  # name, leanseg arguments...
  local name=$1
  shift
  local t0=$(date +%s.%N)
  "$LEANSEG" "$@" --out "$OUT/$name" >"$OUT/$name.log" 2>&1 || { echo "$name failed:"; tail -5 "$OUT/$name.log"; exit 1; }
  local t1=$(date +%s.%N)
  echo "== $name ($(echo "$t1 - $t0" | bc) s wall, whole command)"
  grep -a -o "data-parallel: .*" "$OUT/$name.log" || true
  grep -a -o "epoch [0-9]*: train loss.*" "$OUT/$name.log" || true
}
run A_1proc_2threads --threads 2 $common --batch-size "$BATCH"
run B_2proc_1thread_syncbn --threads 1 $common --batch-size $((BATCH / 2)) --nproc 2 --sync-bn
run C_2proc_1thread --threads 1 $common --batch-size $((BATCH / 2)) --nproc 2
