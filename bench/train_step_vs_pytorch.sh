#!/usr/bin/env bash
# Training-step speed: leanseg vs PyTorch (Debian python3-torch) on the same machine, one run,
# alternating them so machine noise hits all. Usage:
#   bench/train_step_vs_pytorch.sh [reps] [batch] [size] [rounds]
#   env: MODEL (zoo name: mobilenet-aspp-se-unet, unet-32, efficient-unet; default M1),
#        LOAD (a load of bench/loads.sh, e.g. busy-nice0, kept running beside every row),
#        OUT (JSON lines; default bench-out/train-step-vs-pytorch.jsonl)
# Rows per round: leanseg float32 and bf16 mixed precision, both in the layout `leanseg train`
# uses on this CPU; PyTorch float32 in NCHW (its default) and channels-last. Every process runs
# with glibc told to keep freed memory, as leanseg's executables do; WITH_GLIBC_DEFAULT=1 adds a
# PyTorch row with glibc's default (which returns large blocks to the kernel every step).
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-8}; batch=${2:-16}; size=${3:-256}; rounds=${4:-2}
MODEL=${MODEL:-mobilenet-aspp-se-unet}
OUT=${OUT:-bench-out/train-step-vs-pytorch.jsonl}
[ -x build/bench_train_step ] || { echo "build first: scripts/build.sh"; exit 1; }
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "needs Debian's python3-torch: apt-get install python3-torch"; exit 1; }
mkdir -p "$(dirname "$OUT")"; : > "$OUT"
source bench/loads.sh
trap stop_load EXIT
[ -n "${LOAD:-}" ] && start_load "$LOAD"
layout=$(build/bench_train_step --print-training-layout)
keep="MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736"
row() { echo "{\"round\": $1, \"load\": \"${LOAD:-idle}\", \"step\": $2}" | tee -a "$OUT"; }
for round in $(seq 1 "$rounds"); do
  common=(--model "$MODEL" --reps "$reps" --batch "$batch" --size "$size" --threads 2)
  row "$round" "$(build/bench_train_step "${common[@]}" $layout)"
  row "$round" "$(env $keep OMP_NUM_THREADS=2 /usr/bin/python3 bench/train_step_pytorch.py "${common[@]}")"
  row "$round" "$(build/bench_train_step "${common[@]}" $layout --bf16)"
  row "$round" "$(env $keep OMP_NUM_THREADS=2 /usr/bin/python3 bench/train_step_pytorch.py "${common[@]}" --channels-last 1)"
  if [ -n "${WITH_GLIBC_DEFAULT:-}" ]; then
    row "$round" "$(OMP_NUM_THREADS=2 /usr/bin/python3 bench/train_step_pytorch.py "${common[@]}")"
  fi
done
/usr/bin/python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("\n| round | load | implementation | median ms | min | max | × PyTorch fp32 NCHW (same round) | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    s = r["step"]
    ref = next(q["step"]["median_ms"] for q in rows if q["round"] == r["round"] and q["step"]["impl"] == "pytorch"
               and not q["step"]["channels_last"])
    name = s["impl"] + (" bf16" if s.get("bf16") else " fp32") + (" channels-last" if s["channels_last"] else " NCHW")
    print(f"| {r['round']} | {r['load']} | {name} | {s['median_ms']:.0f} | {s['min_ms']:.0f} | {s['max_ms']:.0f} | "
          f"{s['median_ms'] / ref:.2f} | {s['peak_rss_mb']:.0f} |")
PY
