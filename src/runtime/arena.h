// Static memory planning: every activation gets a fixed offset in one buffer, chosen once per
// input size from the step at which it is written and the last step that reads it. Buffers
// whose lifetimes do not overlap share bytes; nothing is allocated per inference.
#pragma once
#include <cstddef>
#include <vector>

namespace leanseg::runtime {

struct ArenaRequest {
  size_t bytes = 0;
  int first_step = 0, last_step = 0;  // inclusive lifetime
};

struct ArenaPlan {
  std::vector<size_t> offsets;  // per request
  size_t total_bytes = 0;
};

// Greedy: largest first, each at the lowest aligned offset free for its whole lifetime.
ArenaPlan plan_arena(const std::vector<ArenaRequest>& requests, size_t alignment = 64);

}  // namespace leanseg::runtime
