#!/usr/bin/env bash
# The HC18 experiments behind README's compression table (CPU protocol, ~2 h on 2 cores):
# compressed variants of the trained M1 (fine-tuned where the method needs it), the M4 student
# trained with and without M1 as its teacher, and M3. Each step is skipped when its output exists,
# so the script can be re-run after an interruption. Then: scripts/hc18_bench.sh.
#   usage: scripts/hc18_experiments.sh [RUNS_DIR]   (default runs/; needs runs/hc18-m1 from README)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
DATA=../shared/data/hc18
WEIGHTS=../shared/weights/mobilenet_v2_imagenet.safetensors
M1=$RUNS/hc18-m1/best.safetensors
OUT=$RUNS/hc18-compressed
mkdir -p "$OUT"
leanseg() { build/leanseg "$@"; }
step() { [ -e "$1" ] && echo "have $1" && return 1; echo "== $1"; return 0; }

# Magnitude pruning 50% → 2 fine-tuning epochs with the masks kept → int8 per channel.
if step "$OUT/m1-prune50-ft-int8.safetensors"; then
  leanseg compress --model "$M1" --out "$OUT/m1-prune50-ft-int8.safetensors" --prune magnitude:0.5 \
    --finetune-epochs 2 --data "$DATA" --quant int8 --per-channel --no-progress
fi
# Structured pruning 30% (channels removed) → 3 fine-tuning epochs.
if step "$OUT/m1-structured30-ft.safetensors"; then
  leanseg compress --model "$M1" --out "$OUT/m1-structured30-ft.safetensors" --prune structured:0.3 \
    --finetune-epochs 3 --data "$DATA" --no-progress
fi
# 4-bit weights (per channel) with 4 epochs of quantization-aware fine-tuning.
if step "$OUT/m1-int4-qat.safetensors"; then
  leanseg compress --model "$M1" --out "$OUT/m1-int4-qat.safetensors" --quant int4 --per-channel --qat 4 \
    --finetune-epochs 4 --data "$DATA" --no-progress
fi
# M4 student: the same 12-epoch recipe without and with M1 as the teacher.
if step "$RUNS/hc18-m4/best.safetensors"; then
  leanseg train --preset hc18-cpu --model mobilenet-aspp-se-unet-lite --encoder-weights "$WEIGHTS" \
    --data "$DATA" --out "$RUNS/hc18-m4" --epochs 12 --no-progress
fi
if step "$RUNS/hc18-m4-distilled/best.safetensors"; then
  leanseg train --preset hc18-cpu --model mobilenet-aspp-se-unet-lite --encoder-weights "$WEIGHTS" \
    --data "$DATA" --out "$RUNS/hc18-m4-distilled" --epochs 12 --distill "$M1" --distill-alpha 0.5 \
    --distill-temperature 2 --no-progress
fi
# The M2 baseline on BBBC010 (55 minutes), with the protocol its published row was measured
# with: bbbc010-cpu as it was before it moved to M1 (192² crops, 4 per image, rate 1e-3, fp32).
if step "$RUNS/bbbc010-m2/best.safetensors"; then
  leanseg train --preset bbbc010-cpu --model unet-32 --data ../shared/data/bbbc010 --out "$RUNS/bbbc010-m2" \
    --input-size 192 --crops-per-image 4 --lr 1e-3 --fp32 --no-progress
fi
