#include "arena.h"

#include <algorithm>
#include <numeric>

namespace leanseg::runtime {

ArenaPlan plan_arena(const std::vector<ArenaRequest>& requests, size_t alignment) {
  auto align = [&](size_t x) { return (x + alignment - 1) / alignment * alignment; };
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return requests[a].bytes > requests[b].bytes; });

  ArenaPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<size_t> placed;
  for (size_t i : order) {
    const ArenaRequest& r = requests[i];
    // Byte ranges of already placed buffers alive at the same time, sorted by offset.
    std::vector<std::pair<size_t, size_t>> busy;
    for (size_t j : placed) {
      const ArenaRequest& o = requests[j];
      if (o.first_step <= r.last_step && r.first_step <= o.last_step)
        busy.emplace_back(plan.offsets[j], plan.offsets[j] + align(o.bytes));
    }
    std::sort(busy.begin(), busy.end());
    size_t offset = 0;
    for (const auto& [begin, end] : busy) {
      if (offset + align(r.bytes) <= begin) break;
      offset = std::max(offset, end);
    }
    plan.offsets[i] = offset;
    plan.total_bytes = std::max(plan.total_bytes, offset + align(r.bytes));
    placed.push_back(i);
  }
  return plan;
}

}  // namespace leanseg::runtime
