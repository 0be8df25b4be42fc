// Internals of magnitude pruning shared by the `leanseg compress` command and the tests; the
// API is in include/leanseg/compress.h.
#pragma once
#include <cstdint>
#include <string>

#include "leanseg/compress.h"

namespace leanseg {

// Throws Error "<what>: sparsity must be in [0, 1), got P" when p is outside [0, 1) or not finite.
void check_sparsity(double p, const std::string& what);

// The number of weights pruned out of n at sparsity p: round(p · n).
int64_t prune_count(double p, int64_t n);

// `--prune METHOD:P`, e.g. "magnitude:0.5" or "structured:0.3". Throws Error naming --prune for
// a missing or unknown method, a malformed number or a sparsity outside [0, 1).
struct PruneSpec {
  std::string method;
  double sparsity = 0;
};
PruneSpec parse_prune_spec(const std::string& text);

}  // namespace leanseg
