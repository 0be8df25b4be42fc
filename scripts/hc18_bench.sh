#!/usr/bin/env bash
# README's comparison table on HC18 (CPU protocol): the trained M1, its quantized and pruned
# variants, the fine-tuned compressed files of scripts/hc18_experiments.sh, the M2 baseline and
# the M4 students, all measured by `leanseg bench` on the validation split of runs/hc18-m1.
#   usage: scripts/hc18_bench.sh [RUNS_DIR] [RUNS_PER_ROW]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
ROUNDS=${2:-20}
models=()
for f in hc18-compressed/m1-prune50-ft-int8 hc18-compressed/m1-structured30-ft hc18-compressed/m1-int4-qat \
         hc18-m2/best hc18-m4/best hc18-m4-distilled/best hc18-m3/best; do
  [ -e "$RUNS/$f.safetensors" ] && models+=(--model "$RUNS/$f.safetensors")
done
build/leanseg bench --data ../shared/data/hc18 --split "$RUNS/hc18-m1/split.json" --out "$RUNS/bench-hc18" \
  --variants-of "$RUNS/hc18-m1/best.safetensors" --quant fp16,bf16,int8,int4,int2 --prune 0.3,0.5,0.7,0.9 \
  --structured 0.3 --runtime fp32,bf16,int8 --runs "$ROUNDS" --threads 2 "${models[@]}"
