#!/usr/bin/env python3
"""Where a model's HC error comes from, from `leanseg eval --json --per-image` on the training and
validation images of one run (docs/results.md, "HC error: ... where the error is"):

  leanseg eval --model RUN/best.safetensors --data HC18 --split RUN/split.json --subset train --json --per-image > train.json
  leanseg eval --model RUN/best.safetensors --data HC18 --split RUN/split.json --subset val --json --per-image > val.json
  python3 scripts/hc_error_analysis.py HC18/training_set_pixel_size_and_HC.csv train.json val.json

Prints the boundary bias (mean signed HC error over 2π, in pixels) on both subsets, the HC MAE the
validation images would have with the training images' median bias subtracted as an outline
offset (a calibration, not built into leanseg), and the share of the summed error in the worst 10.
"""
import csv, json, math, statistics, sys

if len(sys.argv) != 4:
    sys.exit(__doc__)
pixel_mm = {r["filename"].rsplit(".", 1)[0]: float(r["pixel size(mm)"]) for r in csv.DictReader(open(sys.argv[1]))}
train, val = (json.load(open(f))["images"] for f in sys.argv[2:4])
bias_px = lambda e: (e["hc_pred_mm"] - e["hc_ref_mm"]) / pixel_mm[e["id"]] / (2 * math.pi)
offset = statistics.median(bias_px(e) for e in train)
errors = sorted((abs(e["hc_pred_mm"] - e["hc_ref_mm"]) for e in val), reverse=True)
calibrated = [abs(e["hc_pred_mm"] - 2 * math.pi * offset * pixel_mm[e["id"]] - e["hc_ref_mm"]) for e in val]
print(f"boundary bias: training median {offset:+.2f} px, validation mean {statistics.mean(map(bias_px, val)):+.2f} px")
print(f"validation HC MAE {statistics.mean(errors):.3f} mm -> {statistics.mean(calibrated):.3f} mm with the training bias subtracted")
print(f"median abs. error {statistics.median(errors):.2f} mm; worst 10 of {len(errors)}: "
      f"{sum(errors[:10]) / sum(errors):.0%} of the summed error ({errors[9]:.1f}-{errors[0]:.1f} mm each)")
