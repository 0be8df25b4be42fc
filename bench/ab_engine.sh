#!/usr/bin/env bash
# Before/after of an engine change in one run: `leanseg-infer --bench` with the runtime library
# of two builds, alternating (A, B, A, B, ...) so drifts of a shared machine hit both alike.
#   usage: bench/ab_engine.sh LIBDIR_A LIBDIR_B FILE.lsr [PRECISIONS="fp32 int8"] [ROUNDS=8] [RUNS=20]
# LIBDIR_*: a folder holding libleanseg_runtime.so.0 (copy build/libleanseg_runtime.so* there
# before rebuilding); the same folder twice with ARGS_A / ARGS_B (more leanseg-infer options per
# side) compares two settings of one build, e.g. ARGS_A=--fixed-threads for the cost of the
# thread adaptation. Prints, per precision, the median over rounds of each side's median and B/A.
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1; B=$2; LSR=$3; PRECISIONS=${4:-fp32 int8}; ROUNDS=${5:-8}; RUNS=${6:-20}
for p in $PRECISIONS; do
  for r in $(seq "$ROUNDS"); do
    for side in A B; do
      dir=$A; args=${ARGS_A:-}
      [ $side = B ] && dir=$B && args=${ARGS_B:-}
      LD_LIBRARY_PATH=$dir build/leanseg-infer "$LSR" --bench --precision "$p" --threads 2 --runs "$RUNS" --warmup 3 --json $args |
        python3 -c 'import json,sys; print(sys.argv[1], sys.argv[2], json.load(sys.stdin)["median_ms"])' "$p" $side
    done
  done
done | python3 -c '
import sys, statistics, collections
m = collections.defaultdict(list)
for line in sys.stdin:
    p, side, ms = line.split(); m[(p, side)].append(float(ms))
for p in dict.fromkeys(k[0] for k in m):
    a, b, n = statistics.median(m[(p, "A")]), statistics.median(m[(p, "B")]), len(m[(p, "A")])
    print(f"{p}: A {a:.2f} ms  B {b:.2f} ms  B/A {b / a:.3f}  (medians of {n} rounds)")'
