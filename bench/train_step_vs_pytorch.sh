#!/usr/bin/env bash
# Training-step speed: leanseg vs PyTorch (Debian python3-torch) on the same machine, one run,
# alternating the two so machine noise hits both. Usage: bench/train_step_vs_pytorch.sh [reps] [batch] [size]
# PyTorch runs with glibc told to keep freed memory, as leanseg does; WITH_GLIBC_DEFAULT=1 adds
# a PyTorch row with glibc's default (which returns large blocks to the kernel every step).
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-8}; batch=${2:-16}; size=${3:-256}
[ -x build/bench_train_step ] || { echo "build first: scripts/build.sh"; exit 1; }
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "needs Debian's python3-torch: apt-get install python3-torch"; exit 1; }
for round in 1 2; do
  build/bench_train_step --reps "$reps" --batch "$batch" --size "$size" --threads 2
  build/bench_train_step --reps "$reps" --batch "$batch" --size "$size" --threads 2 --channels-last
  # PyTorch under the memory policy leanseg's executables set (keep_freed_memory), and as shipped.
  MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 OMP_NUM_THREADS=2 \
    /usr/bin/python3 bench/train_step_pytorch.py --reps "$reps" --batch "$batch" --size "$size" --threads 2
  if [ -n "${WITH_GLIBC_DEFAULT:-}" ]; then OMP_NUM_THREADS=2 \
    /usr/bin/python3 bench/train_step_pytorch.py --reps "$reps" --batch "$batch" --size "$size" --threads 2; fi
done
