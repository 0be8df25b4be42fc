#!/usr/bin/env bash
# Sets up (Debian packages), builds and runs the whole test suite through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
start=$(date +%s)
bash scripts/build.sh
echo "build: $(( $(date +%s) - start )) s"
# Threads: 2 per test process, tests one at a time (the CI machine has 2 cores).
OMP_NUM_THREADS=2 ctest --test-dir build --output-on-failure
# The sanitizer job (ASan + UBSan on the LibTorch-free tests; scripts/test_asan.sh).
if [ "${LEANSEG_SKIP_ASAN:-0}" != 1 ]; then
  bash scripts/test_asan.sh
fi
