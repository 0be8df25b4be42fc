#!/usr/bin/env bash
# Chooses the executables' OpenMP spin bound (src/util/openmp_wait_policy.h): runs
# bench/under_load.sh once per libgomp waiting setting, one after another in one run, and prints
# one table of medians (ms) and × idle per setting. A user's GOMP_SPINCOUNT/OMP_WAIT_POLICY wins
# over the built-in bound, which is how each setting is applied here.
#   usage: bench/spin_sweep.sh [OUT_DIR] [RUNS]
#   env:   SETTINGS ("300000 100000 30000 10000 1000 passive"), LOADS, ORT_DIR (as under_load.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench-out/spin-sweep}
RUNS=${2:-20}
SETTINGS=${SETTINGS:-300000 100000 30000 10000 1000 passive}
export LOADS=${LOADS:-idle short-procs-nice19 leanseg-procs-nice19 busy-nice0 idle}
mkdir -p "$OUT"
for s in $SETTINGS; do
  echo "== GOMP waiting: $s"
  mkdir -p "$OUT/$s"; cp "$OUT"/models/* "$OUT/$s/" 2>/dev/null || true  # one export for all settings
  if [ "$s" = passive ]; then env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive bench/under_load.sh "$OUT/$s" "$RUNS"
  else env -u OMP_WAIT_POLICY GOMP_SPINCOUNT="$s" bench/under_load.sh "$OUT/$s" "$RUNS"; fi > "$OUT/$s.log" 2>&1
  [ -d "$OUT/models" ] || { mkdir -p "$OUT/models"; cp "$OUT/$s"/*.lsr "$OUT/$s"/*.onnx "$OUT/models/"; }
done
python3 - "$OUT" $SETTINGS <<'PY'
import csv, sys, os
out, settings = sys.argv[1], sys.argv[2:]
print("| setting | load | engine fp32 ms (× idle, p90/median) | engine int8 ms (× idle, p90/median) | ONNX Runtime fp32 ms (× idle) |")
print("|---|---|---|---|---|")
for s in settings:
    rows = list(csv.DictReader(open(os.path.join(out, s, "under_load.csv"))))
    idle = {}
    for r in rows:
        if r["load"] == "idle": idle.setdefault((r["impl"], r["precision"]), float(r["median_ms"]))
    by_load = []
    for r in rows:
        if not by_load or by_load[-1][0] != r["load"]: by_load.append((r["load"], {}))
        by_load[-1][1][(r["impl"], r["precision"])] = r
    for load, cells in by_load:
        def cell(k):
            r = cells.get(k)
            if r is None: return "-"
            m = float(r["median_ms"]); p90 = float(r["p90_ms"]) if r["p90_ms"] else None
            tail = f", {p90 / m:.2f}" if p90 else ""
            return f"{m:.1f} ({m / idle[k]:.2f}×{tail})"
        print(f"| {s} | {load} | {cell(('engine','fp32'))} | {cell(('engine','int8'))} | {cell(('onnxruntime','fp32'))} |")
PY
