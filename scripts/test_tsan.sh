#!/usr/bin/env bash
# ThreadSanitizer on the engine's threading contract (include/leanseg/runtime.h): builds the
# LibTorch-free runtime tests with clang -fsanitize=thread (CMakePresets.json preset "tsan",
# build-tsan/) and runs EngineOps.ConcurrentEnginesOnOneGraphMatchSerialRunsExactly (two engines
# of different thread counts in one thread; four host threads each running its own engine, fp32
# with and without Winograd and int8; the zoo-model version of the test needs LibTorch, which
# is not built with TSan) with LLVM's Archer tool, which tells
# TSan about libomp's barriers and tasks. Any report fails (halt_on_error). Not part of CI (the
# build takes ~10 min on 2 cores); run by hand: bash scripts/test_tsan.sh [GTEST_FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
FILTER=${1:-EngineOps.ConcurrentEngines*}
LLVM_LIB=${LLVM_LIB:-/usr/lib/llvm-14/lib}
[ -e "$LLVM_LIB/libarcher.so" ] || { echo "test_tsan: $LLVM_LIB/libarcher.so not found (Debian: libomp-14-dev)"; exit 1; }
start=$(date +%s)
[ -f build-tsan/CMakeCache.txt ] || cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "${LEANSEG_JOBS:-2}" --target leanseg_runtime_tests
echo "tsan build: $(( $(date +%s) - start )) s"
# The test binary needs libomp before libgomp (oneDNN's), so both resolve GOMP_* to one runtime.
[[ "$(ldd build-tsan/leanseg_runtime_tests)" == *libomp* ]] || { echo "test_tsan: not linked against libomp"; exit 1; }
OMP_NUM_THREADS=2 OMP_TOOL_LIBRARIES="$LLVM_LIB/libarcher.so" ARCHER_OPTIONS="verbose=1" \
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1" \
  build-tsan/leanseg_runtime_tests --gtest_filter="$FILTER"
