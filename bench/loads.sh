# The competing loads of the under-load benchmarks (sourced by bench/under_load.sh and
# bench/train_under_load.sh): start_load NAME starts one in the background and gives it 2 s to
# settle; stop_load stops it. Loads that run the engine need $lsr (a .lsr file) and $MODEL.
pids=()
start_load() {
  case "$1" in
    idle) ;;
    busy-nice0) sh -c 'while :; do :; done' & pids+=($!) ;;
    busy-nice19) nice -n 19 sh -c 'while :; do :; done' & pids+=($!) ;;
    # Another OpenMP program on both cores (the engine itself, benchmarking without end).
    openmp-nice19) nice -n 19 build/leanseg-infer "$lsr" --bench --runs 1000000 --threads 2 >/dev/null & pids+=($!) ;;
    # A stream of short-lived processes (fork + exec + exit, ~1 ms each).
    short-procs-nice19) nice -n 19 sh -c 'while :; do /bin/true; done' & pids+=($!) ;;
    # Touches 2 GB, frees it, again: the kernel zeroes and reclaims pages all the time.
    memory-churn-nice19) nice -n 19 python3 -c '
while True:
    b = bytearray(2 << 30); b[::4096] = b"\1" * len(b[::4096]); del b' & pids+=($!) ;;
    # What made the engine collapse: short-lived leanseg processes (LibTorch start-up, hundreds
    # of MB mapped and faulted in, some allocating gigabytes), one after another, niced.
    leanseg-procs-nice19) nice -n 19 sh -c "while :; do build/leanseg info --model $MODEL --input-size 512 >/dev/null 2>&1;
        python3 -c 'b = bytearray(3 << 30)' ; done" & pids+=($!) ;;
    *) echo "unknown load $1"; exit 1 ;;
  esac
  sleep 2
}
stop_load() {
  for p in "${pids[@]}"; do pkill -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
