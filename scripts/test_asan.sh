#!/usr/bin/env bash
# The sanitizer job: builds the LibTorch-free tests with ASan + UBSan (CMakePresets.json preset
# "asan": build-asan/, leanseg_base_tests and leanseg_runtime_tests) and runs them through ctest.
# Any sanitizer report fails the test that triggers it (halt_on_error, abort_on_error).
# Called by scripts/test.sh (so by CI); LEANSEG_SKIP_ASAN=1 skips it there.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
cmake --preset asan >/dev/null
cmake --build --preset asan -j "${LEANSEG_JOBS:-2}"
echo "asan build: $(( $(date +%s) - start )) s"
start=$(date +%s)
LSAN_OPTIONS="suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0" ctest --preset asan
echo "asan tests: $(( $(date +%s) - start )) s"
