#!/usr/bin/env bash
# Engine latency idle and under competing loads, with ONNX Runtime (when installed) timed on
# the same model under the same load, in one run. Each load is started, given 2 s to settle,
# measured, and killed before the next; the idle row is measured first and again last (so a
# drifting machine shows). Medians and p90 over --runs, ratios to the idle row of this run.
#   usage: bench/under_load.sh [OUT_DIR] [RUNS]
#   env:   ORT_DIR (ONNX Runtime for node, ../shared/bench/setup_ort.sh), MODEL (zoo name),
#          SIZE (input size), PRECISIONS ("fp32 int8"), LOADS (names below)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench-out/under-load}
RUNS=${2:-30}
MODEL=${MODEL:-mobilenet-aspp-se-unet}
SIZE=${SIZE:-256}
PRECISIONS=${PRECISIONS:-fp32 int8}
LOADS=${LOADS:-idle busy-nice0 busy-nice19 openmp-nice19 short-procs-nice19 memory-churn-nice19 leanseg-procs-nice19 idle}
ORT_JS=../shared/bench/ort_file.js
mkdir -p "$OUT"
[ -x build/leanseg-infer ] || { echo "build first: scripts/build.sh"; exit 1; }
lsr="$OUT/$MODEL-$SIZE.lsr"; onnx="$OUT/$MODEL-$SIZE.onnx"
[ -e "$lsr" ] || build/leanseg export --model "$MODEL" --format runtime --input-size "$SIZE" --calibrate random --out "$lsr" >/dev/null
[ -e "$onnx" ] || build/leanseg export --model "$MODEL" --format onnx --input-size "$SIZE" --out "$onnx" >/dev/null
have_ort=0
if [ -n "${ORT_DIR:-}" ] && [ -e "$ORT_DIR/node_modules/onnxruntime-node" ] && command -v node >/dev/null; then have_ort=1; fi

pids=()
start_load() {
  case "$1" in
    idle) ;;
    busy-nice0) sh -c 'while :; do :; done' & pids+=($!) ;;
    busy-nice19) nice -n 19 sh -c 'while :; do :; done' & pids+=($!) ;;
    # Another OpenMP program on both cores (the engine itself, benchmarking without end).
    openmp-nice19) nice -n 19 build/leanseg-infer "$lsr" --bench --runs 1000000 --threads 2 >/dev/null & pids+=($!) ;;
    # A stream of short-lived processes (fork + exec + exit, ~1 ms each).
    short-procs-nice19) nice -n 19 sh -c 'while :; do /bin/true; done' & pids+=($!) ;;
    # Touches 2 GB, frees it, again: the kernel zeroes and reclaims pages all the time.
    memory-churn-nice19) nice -n 19 python3 -c '
while True:
    b = bytearray(2 << 30); b[::4096] = b"\1" * len(b[::4096]); del b' & pids+=($!) ;;
    # What made the engine collapse: short-lived leanseg processes (LibTorch start-up, hundreds
    # of MB mapped and faulted in, some allocating gigabytes), one after another, niced.
    leanseg-procs-nice19) nice -n 19 sh -c "while :; do build/leanseg info --model $MODEL --input-size 512 >/dev/null 2>&1;
        python3 -c 'b = bytearray(3 << 30)' ; done" & pids+=($!) ;;
    *) echo "unknown load $1"; exit 1 ;;
  esac
  sleep 2
}
stop_load() {
  for p in "${pids[@]}"; do pkill -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
trap stop_load EXIT

csv="$OUT/under_load.csv"
echo "load,impl,precision,median_ms,p90_ms,min_ms,max_ms" > "$csv"
for load in $LOADS; do
  start_load "$load"
  for p in $PRECISIONS; do
    j=$(build/leanseg-infer "$lsr" --bench --precision "$p" --threads 2 --runs "$RUNS" --warmup 3 --json)
    python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(",".join([sys.argv[2],"engine",sys.argv[3]]+["%.2f"%j[k] for k in ("median_ms","p90_ms","min_ms","max_ms")]))' "$j" "$load" "$p" >> "$csv"
  done
  if [ $have_ort = 1 ]; then
    j=$(ORT_DIR=$ORT_DIR node "$ORT_JS" "$onnx" --size "$SIZE" --runs "$RUNS" --threads 2)
    python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(",".join([sys.argv[2],"onnxruntime","fp32","%.2f"%j["median_ms"],"","%.2f"%j["min_ms"],"%.2f"%j["max_ms"]]))' "$j" "$load" >> "$csv"
  fi
  stop_load
  tail -n +2 "$csv" | grep "^$load," | tail -n $(( $(echo $PRECISIONS | wc -w) + have_ort ))
done
python3 - "$csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
idle = {}
for r in rows:
    if r["load"] == "idle": idle.setdefault((r["impl"], r["precision"]), float(r["median_ms"]))
print("\n| load | impl | precision | median ms | p90 ms | × idle | p90/median |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    k = (r["impl"], r["precision"]); m = float(r["median_ms"])
    p90 = float(r["p90_ms"]) if r["p90_ms"] else float("nan")
    print(f"| {r['load']} | {r['impl']} | {r['precision']} | {m:.1f} | {p90:.1f} | {m / idle[k]:.2f} | {p90 / m:.2f} |")
PY
