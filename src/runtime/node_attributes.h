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

// A Conv/ConvTranspose's attributes with ONNX's defaults, the kernel defaulting to its weights'
// spatial size ([*, *, kh, kw]). pads: top, left, bottom, right.
struct ConvAttributes {
  int64_t groups = 1;
  std::vector<int64_t> kernel, strides, pads, dilations;
};
inline ConvAttributes conv_attributes(const GraphNode& n, const std::vector<int64_t>& weight_shape) {
  return {int_attr(n, "group", 1), ints_attr(n, "kernel_shape", {weight_shape[2], weight_shape[3]}),
          ints_attr(n, "strides", {1, 1}), ints_attr(n, "pads", {0, 0, 0, 0}), ints_attr(n, "dilations", {1, 1})};
}

}  // namespace leanseg::runtime
