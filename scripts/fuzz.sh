#!/usr/bin/env bash
# Builds the libFuzzer harnesses (CMakePresets.json preset "fuzz": clang, ASan + UBSan,
# LibTorch-free, build-fuzz/) and runs each in turn, one at a time, at the lowest priority.
#
#   bash scripts/fuzz.sh [RUNS] [SECONDS] [HARNESS...]
#
# Each harness stops after RUNS executions (default 10000000) or SECONDS (default 3600),
# whichever comes first. Seeds come from tests/corpus/make_corpus.py --seeds; the growing
# corpora stay in build-fuzz/corpus/<harness>, findings (crash-*, oom-*, timeout-*) in
# build-fuzz/findings/<harness>, logs in build-fuzz/logs/<harness>.log. Exit status 1 if any
# harness found something. LEANSEG_FUZZ_NO_BUILD=1 skips the build step.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10000000}
SECONDS_EACH=${2:-3600}
shift $(( $# > 2 ? 2 : $# )) || true
HARNESSES=("$@")
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=(fuzz_safetensors fuzz_metadata fuzz_hc18_csv fuzz_image fuzz_runtime_file)

if [ "${LEANSEG_FUZZ_NO_BUILD:-0}" != 1 ]; then  # 1: run the harnesses as built
  if [ ! -f build-fuzz/CMakeCache.txt ]; then CC=clang CXX=clang++ cmake --preset fuzz >/dev/null; fi
  cmake --build --preset fuzz
fi
# LEANSEG_FUZZ_NO_SEEDS=1: the seeds are there already (several fuzz.sh running side by side).
[ "${LEANSEG_FUZZ_NO_SEEDS:-0}" = 1 ] || /usr/bin/python3 tests/corpus/make_corpus.py --seeds build-fuzz/seeds

status=0
for h in "${HARNESSES[@]}"; do
  seeds=build-fuzz/seeds/${h#fuzz_}
  mkdir -p "build-fuzz/corpus/$h" "build-fuzz/findings/$h" build-fuzz/logs
  log=build-fuzz/logs/$h.log
  # -rss_limit_mb: ASan's shadow memory plus OpenCV/oneDNN; a larger allocation is a finding.
  # bash's `time` reports the harness's CPU time too: beside other work a niced harness gets less
  # than its wall time, and the figures say so.
  TIMEFORMAT='time: real %R s, user %U s, sys %S s'
  { time ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    nice -n 19 "build-fuzz/fuzz/$h" -runs="$RUNS" -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -timeout=30 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="build-fuzz/findings/$h/" \
    "build-fuzz/corpus/$h" "$seeds" > "$log" 2>&1 || status=1; } 2>> "$log"
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || echo '?')
  findings=$(find "build-fuzz/findings/$h" -type f | wc -l)
  cpu=$(grep '^time: ' "$log" | tail -1 | sed 's/^time: //')
  echo "$h: $execs executions, $speed exec/s, $cov, corpus $(ls "build-fuzz/corpus/$h" | wc -l) inputs, findings $findings ($cpu)"
done
exit $status
