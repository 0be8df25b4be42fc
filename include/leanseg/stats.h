// Latency statistics and process memory, shared by `leanseg eval` and the LibTorch-free
// `leanseg-infer --bench` so both report the same quantities the same way (torch-free).
#pragma once
#include <cstdint>
#include <vector>

namespace leanseg {

// The p-quantile (p in [0, 1]) with linear interpolation between order statistics; NaN when empty.
double percentile(std::vector<double> v, double p);

// Peak resident set size of this process (VmHWM), bytes; 0 where /proc is unavailable.
int64_t peak_rss_bytes();

}  // namespace leanseg
