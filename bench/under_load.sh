#!/usr/bin/env bash
# Engine latency idle and under competing loads, with ONNX Runtime (when installed) timed on
# the same model under the same load, in one run. Each load is started, given 2 s to settle,
# measured, and killed before the next. The list of loads is gone through ROUNDS times; every
# round starts and ends with an idle row, and a load's "× idle" is the median over rounds of its
# median divided by the mean of the two idle medians of its own round, so a machine whose speed
# drifts within the run (a shared host: idle medians 1.5x apart in one run were seen) does not
# pass for an effect of the load. Medians and p90 over --runs.
#   usage: bench/under_load.sh [OUT_DIR] [RUNS] [ROUNDS]
#   env:   ORT_DIR (ONNX Runtime for node, ../shared/bench/setup_ort.sh), MODEL (zoo name),
#          SIZE (input size), PRECISIONS ("fp32 int8"), LOADS (names below), ENGINE_THREADS (2),
#          ENGINE_ENV (assignments for the engine's process only, e.g. "LD_PRELOAD=... KMP_BLOCKTIME=0"),
#          ENGINE_ARGS (more leanseg-infer options for the engine, e.g. "--fixed-threads"),
#          ENGINE_B_ENV / ENGINE_B_ARGS (when either is set, a second engine, impl "engine-b", timed
#          right after the first under the same load: e.g. "LD_LIBRARY_PATH=DIR" with another
#          build's libleanseg_runtime.so.0, or ENGINE_B_ARGS="--fixed-threads")
# The CSV's last columns: runs on fewer threads (the engine adapting to contention) and the
# median share of thread time the engine's threads waited for a core.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench-out/under-load}
RUNS=${2:-30}
ROUNDS=${3:-${ROUNDS:-1}}
MODEL=${MODEL:-mobilenet-aspp-se-unet}
SIZE=${SIZE:-256}
PRECISIONS=${PRECISIONS:-fp32 int8}
LOADS=${LOADS:-busy-nice0 busy-nice19 openmp-nice19 short-procs-nice19 memory-churn-nice19 leanseg-procs-nice19}
ORT_JS=../shared/bench/ort_file.js
mkdir -p "$OUT"
[ -x build/leanseg-infer ] || { echo "build first: scripts/build.sh"; exit 1; }
lsr="$OUT/$MODEL-$SIZE.lsr"; onnx="$OUT/$MODEL-$SIZE.onnx"
[ -e "$lsr" ] || build/leanseg export --model "$MODEL" --format runtime --input-size "$SIZE" --calibrate random --out "$lsr" >/dev/null
[ -e "$onnx" ] || build/leanseg export --model "$MODEL" --format onnx --input-size "$SIZE" --out "$onnx" >/dev/null
have_ort=0
if [ -n "${ORT_DIR:-}" ] && [ -e "$ORT_DIR/node_modules/onnxruntime-node" ] && command -v node >/dev/null; then have_ort=1; fi

source bench/loads.sh  # start_load NAME / stop_load: the competing loads
trap stop_load EXIT

engines=1; [ -n "${ENGINE_B_ENV:-}${ENGINE_B_ARGS:-}" ] && engines=2
csv="$OUT/under_load.csv"
echo "round,load,impl,precision,median_ms,p90_ms,min_ms,max_ms,fewer_threads_runs,waited_share" > "$csv"
for round in $(seq "$ROUNDS"); do
for load in idle $(echo " $LOADS " | sed 's/ idle / /g') idle; do
  start_load "$load"
  for p in $PRECISIONS; do
    for impl in engine $([ $engines = 2 ] && echo engine-b); do
      e=${ENGINE_ENV:-}; a=${ENGINE_ARGS:-}
      [ $impl = engine-b ] && e=${ENGINE_B_ENV:-} && a=${ENGINE_B_ARGS:-}
      j=$(env $e build/leanseg-infer "$lsr" --bench --precision "$p" --threads "${ENGINE_THREADS:-2}" --runs "$RUNS" --warmup 3 --json $a)
      python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(",".join([sys.argv[4],sys.argv[2],sys.argv[5],sys.argv[3]]+["%.2f"%j[k] for k in ("median_ms","p90_ms","min_ms","max_ms")]+["%d"%j["runs_on_fewer_threads"],"%.3f"%j["median_waited_share"]]))' "$j" "$load" "$p" "$round" "$impl" >> "$csv"
    done
  done
  if [ $have_ort = 1 ]; then
    j=$(ORT_DIR=$ORT_DIR node "$ORT_JS" "$onnx" --size "$SIZE" --runs "$RUNS" --threads 2)
    python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(",".join([sys.argv[3],sys.argv[2],"onnxruntime","fp32","%.2f"%j["median_ms"],"","%.2f"%j["min_ms"],"%.2f"%j["max_ms"],"",""]))' "$j" "$load" "$round" >> "$csv"
  fi
  stop_load
  tail -n +2 "$csv" | grep "^$round,$load," | tail -n $(( $(echo $PRECISIONS | wc -w) * engines + have_ort ))
done
done
python3 bench/under_load_summary.py "$csv"
