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
