#!/usr/bin/env bash
# Kill -9 at random points of a training run, resume each with --resume, and check that every
# resumed run ends with bit-identical weights to an uninterrupted run (issue 17, item 5).
#
#   bash scripts/kill_resume_check.sh [BUILD_DIR] [KILLS]        (defaults: build, 10)
#
# A tiny run: efficient-unet at 64x64 on 16 generated disc images (tests/corpus/make_corpus.py's
# writers), 8 epochs, 2 threads. The kill points are uniform over the reference run's wall time
# (seeded: LEANSEG_KILL_SEED, default 17), so some land while a checkpoint or model file is
# being written. Compared: the tensors (names, dtypes, shapes, bytes) of best.safetensors and
# last.safetensors, and the files' sha256 (their metadata holds no timestamps).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
KILLS=${2:-10}
LEANSEG=$(realpath "$BUILD/leanseg")
WORK=$(mktemp -d /tmp/leanseg_kill_resume.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PY=/usr/bin/python3

$PY - "$WORK/data" <<'EOF'
import sys
sys.path.insert(0, "tests/corpus")
import numpy as np
import make_corpus as m
rng = np.random.default_rng(3)
c = m.Corpus(sys.argv[1])
for i in range(16):
    d = m.disc(48, 48, int(rng.integers(6, 16)), int(rng.integers(16, 32)), int(rng.integers(16, 32)))
    img = np.clip(np.where(d, 170, 60) + rng.normal(0, 20, d.shape), 0, 255)
    c.write(f"images/im{i:02d}.png", m.png_bytes(img))
    c.write(f"masks/im{i:02d}.png", m.png_bytes(d * 255))
EOF

train() {  # train OUT [--resume]; exec: run in the background, $! is leanseg itself (kill -9 hits it)
  exec "$LEANSEG" --threads 2 train --preset demo --model efficient-unet --data "$WORK/data" --out "$1" --epochs 8 \
    --input-size 64 --batch-size 4 --seed 5 --no-progress "${@:2}"
}
# Digest of a model file's tensors (header entries and data), ignoring nothing else but the
# header's padding: equal digests mean bit-identical weights.
weights_digest() {
  $PY - "$@" <<'EOF'
import hashlib, json, struct, sys
for path in sys.argv[1:]:
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    header.pop("__metadata__", None)
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    h.update(b[8 + n:])
    print(h.hexdigest()[:16], end=" ")
print()
EOF
}

start=$(date +%s.%N)
(train "$WORK/ref") > "$WORK/ref.log" 2>&1 || { cat "$WORK/ref.log"; exit 1; }
ref_seconds=$(echo "$(date +%s.%N) - $start" | bc)
ref_digest=$(weights_digest "$WORK/ref/best.safetensors" "$WORK/ref/last.safetensors")
ref_sha=$(cd "$WORK/ref" && sha256sum best.safetensors last.safetensors | cut -c1-16 | tr '\n' ' ')
echo "reference run: ${ref_seconds} s; weights (best last) $ref_digest; sha256 $ref_sha"

seed=${LEANSEG_KILL_SEED:-17}
identical=0
before_checkpoint=0
for k in $(seq 1 "$KILLS"); do
  delay=$($PY -c "import random; r = random.Random($seed * 1000 + $k); print(f'{r.uniform(0.05, 0.98) * $ref_seconds:.2f}')")
  out="$WORK/run$k"
  train "$out" > "$WORK/run$k.log" 2>&1 &
  pid=$!
  sleep "$delay"
  if kill -9 "$pid" 2>/dev/null; then killed=yes; else killed="no (had finished)"; fi
  wait "$pid" 2>/dev/null || true
  if kill -0 "$pid" 2>/dev/null; then echo "kill $k: process $pid still alive after kill -9"; exit 1; fi
  [ -f "$out/checkpoint.safetensors" ] || before_checkpoint=$((before_checkpoint + 1))
  epochs_done=$(($(wc -l < "$out/metrics.csv" 2>/dev/null || echo 1) - 1))
  (train "$out" --resume) >> "$WORK/run$k.log" 2>&1 || { cat "$WORK/run$k.log"; exit 1; }
  digest=$(weights_digest "$out/best.safetensors" "$out/last.safetensors")
  sha=$(cd "$out" && sha256sum best.safetensors last.safetensors | cut -c1-16 | tr '\n' ' ')
  tmp_left=$(find "$out" -name '*.tmp.*' | wc -l)
  if [ "$digest" = "$ref_digest" ]; then same=identical; identical=$((identical + 1)); else same=DIFFERENT; fi
  echo "kill $k at ${delay} s (killed: $killed; epochs in metrics.csv at the kill: $epochs_done): resumed weights $digest$same; sha256 $sha; temp files left $tmp_left"
done
echo "kill_resume_check: $identical of $KILLS resumed runs bit-identical to the uninterrupted run ($before_checkpoint killed before the first checkpoint)"
[ "$identical" -eq "$KILLS" ]
