// Process memory policy and counters (torch-free; leanseg_core).
#pragma once
#include <cstdint>

namespace leanseg {

// Tells glibc's malloc to keep freed memory mapped instead of returning it to the kernel: no
// mmap for large blocks (M_MMAP_MAX 0) and no trimming of the heap top (M_TRIM_THRESHOLD
// at its maximum). Why: a training step allocates and frees hundreds of MB of activations and
// gradients; by default every block above the mmap threshold (<= 32 MB) is a fresh mmap, and
// every page of it is faulted in again on first touch. On a fresh 2-core machine of this kind
// that was 43 % of the training process's CPU time in the kernel (~105,000 minor faults/s) and
// a 21.5 s step instead of 3.2-5.0 s. Peak RSS then stays at the high-water mark of a step,
// which the step reaches anyway.
// A user's own MALLOC_MMAP_MAX_ / MALLOC_TRIM_THRESHOLD_ (or LEANSEG_SYSTEM_MALLOC=1) wins.
// Called by leanseg's executables at start-up; libraries never call it (a host program's
// allocator policy is its own). Returns whether the policy was applied.
bool keep_freed_memory();

// This process's resource counters so far (getrusage).
struct ProcessUsage {
  int64_t minor_faults = 0, major_faults = 0;
  double user_seconds = 0, system_seconds = 0;
  int64_t peak_rss_bytes = 0;
};
ProcessUsage process_usage();

}  // namespace leanseg
