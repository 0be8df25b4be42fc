#!/usr/bin/env bash
# Training-step time idle and under competing loads (bench/loads.sh), in one run: one
# `bench_train_step` process per load (M1, batch 16, 256², 2 threads, leanseg's defaults),
# the idle row first and again last; medians of REPS steps, × the first idle row.
#   usage: bench/train_under_load.sh [OUT_DIR] [REPS]
#   env:   MODEL (zoo name), LOADS (names in bench/loads.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench-out/train-under-load}
REPS=${2:-3}
MODEL=${MODEL:-mobilenet-aspp-se-unet}
LOADS=${LOADS:-idle busy-nice0 busy-nice19 short-procs-nice19 memory-churn-nice19 leanseg-procs-nice19 idle}
mkdir -p "$OUT"
[ -x build/bench_train_step ] || { echo "build first: scripts/build.sh"; exit 1; }
lsr="$OUT/$MODEL-256.lsr"
[ -e "$lsr" ] || build/leanseg export --model "$MODEL" --format runtime --input-size 256 --calibrate random --out "$lsr" >/dev/null
source bench/loads.sh
trap stop_load EXIT
out="$OUT/train_under_load.jsonl"
: > "$out"
for load in $LOADS; do
  start_load "$load"
  j=$(build/bench_train_step --model "$MODEL" --reps "$REPS" --threads 2)
  stop_load
  echo "{\"load\": \"$load\", \"step\": $j}" | tee -a "$out"
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
idle = next(r["step"]["median_ms"] for r in rows if r["load"] == "idle")
print("\n| load | step median ms | min | max | × idle | CPU s/step (user+sys) | minor faults/step |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    s = r["step"]
    print(f"| {r['load']} | {s['median_ms']:.0f} | {s['min_ms']:.0f} | {s['max_ms']:.0f} | {s['median_ms'] / idle:.2f} | "
          f"{s['user_s_per_step'] + s['system_s_per_step']:.1f} | {s['minor_faults_per_step']} |")
PY
