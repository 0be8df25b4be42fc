// Attribute access on graph nodes with the ONNX defaults given by the caller. Private to
// src/runtime.
#pragma once
#include <cstdint>
#include <vector>

#include "leanseg/graph.h"

namespace leanseg::runtime {

inline std::vector<int64_t> ints_attr(const GraphNode& n, const char* name, std::vector<int64_t> fallback) {
  const auto* a = n.attribute(name);
  return a ? a->ints : fallback;
}
inline int64_t int_attr(const GraphNode& n, const char* name, int64_t fallback) {
  const auto* a = n.attribute(name);
  return a ? a->i : fallback;
}
inline float float_attr(const GraphNode& n, const char* name, float fallback) {
  const auto* a = n.attribute(name);
  return a ? a->f : fallback;
}

}  // namespace leanseg::runtime
