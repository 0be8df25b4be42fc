#!/usr/bin/env bash
# Chooses the executables' OpenMP spin bound (src/util/openmp_wait_policy.h): runs
# bench/under_load.sh once per libgomp waiting setting, one after another in one run, and prints
# one table of medians (ms) and × idle per setting. A user's GOMP_SPINCOUNT/OMP_WAIT_POLICY wins
# over the built-in bound, which is how each setting is applied here.
#   usage: bench/spin_sweep.sh [OUT_DIR] [RUNS] [ROUNDS]
#   env:   SETTINGS ("300000 100000 30000 10000 1000 passive"), LOADS, ORT_DIR (as under_load.sh)
# A setting is a libgomp spin count, "passive", "passive-tN" (passive with N engine threads on
# the 2 cores: oversubscribed), or "libomp-B" (LLVM's OpenMP runtime preloaded in place of
# libgomp, which it interposes through its GOMP_* entry points, with KMP_BLOCKTIME=B ms), or
# "libomp-B-tN" (the same with N engine threads).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench-out/spin-sweep}
RUNS=${2:-20}
export ROUNDS=${3:-${ROUNDS:-1}}
SETTINGS=${SETTINGS:-300000 100000 30000 10000 1000 passive}
export LOADS=${LOADS:-short-procs-nice19 leanseg-procs-nice19 busy-nice0}  # idle rows come with every round
mkdir -p "$OUT"
for s in $SETTINGS; do
  echo "== GOMP waiting: $s"
  mkdir -p "$OUT/$s"; cp "$OUT"/models/* "$OUT/$s/" 2>/dev/null || true  # one export for all settings
  case "$s" in
    passive) env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive bench/under_load.sh "$OUT/$s" "$RUNS" ;;
    passive-t*) env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive ENGINE_THREADS="${s#passive-t}" bench/under_load.sh "$OUT/$s" "$RUNS" ;;
    libomp-*) b=${s#libomp-}; t=2; case "$b" in *-t*) t=${b#*-t}; b=${b%-t*} ;; esac
      env -u GOMP_SPINCOUNT -u OMP_WAIT_POLICY ENGINE_THREADS="$t" \
        ENGINE_ENV="LD_PRELOAD=${LIBOMP:-/usr/lib/llvm-14/lib/libomp.so.5} KMP_BLOCKTIME=$b OMP_WAIT_POLICY=active" \
        bench/under_load.sh "$OUT/$s" "$RUNS" ;;
    *) env -u OMP_WAIT_POLICY GOMP_SPINCOUNT="$s" bench/under_load.sh "$OUT/$s" "$RUNS" ;;
  esac > "$OUT/$s.log" 2>&1
  [ -d "$OUT/models" ] || { mkdir -p "$OUT/models"; cp "$OUT/$s"/*.lsr "$OUT/$s"/*.onnx "$OUT/models/"; }
done
csvs=(); for s in $SETTINGS; do csvs+=("$OUT/$s/under_load.csv"); done
python3 bench/under_load_summary.py "${csvs[@]}" --labels "$(echo $SETTINGS | tr ' ' ',')"
