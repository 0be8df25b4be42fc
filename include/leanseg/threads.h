// CPU thread settings for LibTorch work (training, evaluation, LibTorch inference).
#pragma once

namespace leanseg {

// Sets LibTorch's intra-op thread count to `n` (<= 0: every core) and keeps OpenBLAS, when it
// is the BLAS in use, single-threaded. Why: LibTorch calls BLAS from inside its own OpenMP
// parallel regions (e.g. per-sample GEMMs of non-oneDNN convolutions), and Debian's pthread
// OpenBLAS then starts its own threads on the same cores. With 2 + 2 busy threads on 2 cores,
// measured here on M4 at 160×160: median 20.7 ms but p90 120 ms; with OpenBLAS at 1 thread,
// median 19.9 ms and p90 25 ms (40 runs each).
void set_cpu_threads(int n);

// OpenBLAS's current thread count, or 0 when OpenBLAS is not loaded.
int openblas_threads();

}  // namespace leanseg
