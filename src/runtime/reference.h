// A naive reference interpreter for Graph (graph.h): plain C++ loops over NCHW tensors, no
// oneDNN, no LibTorch. It is the yardstick the optimised engine is tested against, so it
// favours obviousness over speed (sums accumulate in double). Covers every operator the
// exporter emits: Conv, ConvTranspose, Relu, Sigmoid, HardSigmoid, Add, Mul, Concat, MaxPool,
// GlobalAveragePool, InstanceNormalization, Reshape, Shape, Transpose, Softmax, MatMul.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "leanseg/graph.h"

namespace leanseg::runtime {

// A dense row-major tensor holding floats, or int64 values when is_int (what Shape produces).
struct PlainTensor {
  std::vector<int64_t> shape;
  std::vector<float> f32;
  std::vector<int64_t> i64;
  bool is_int = false;

  int64_t numel() const;
  static PlainTensor floats(std::vector<int64_t> shape, std::vector<float> values);
  static PlainTensor ints(std::vector<int64_t> shape, std::vector<int64_t> values);
  static PlainTensor of(const GraphTensor& t);  // an initializer
};

// Runs the graph on named inputs (every graph input must be given, with the graph's shape on
// its fixed axes). Returns the inputs and every node output by name (initializers excluded).
// Throws Error naming the node for unknown operators and malformed operands.
std::map<std::string, PlainTensor> run_reference(const Graph& g, const std::map<std::string, PlainTensor>& inputs);

// One node on plain tensors: what run_reference does per node, so tests of single engine ops
// can use it. inputs[i] may be nullptr for an omitted optional input (e.g. Conv's bias).
std::vector<PlainTensor> reference_op(const GraphNode& node, const std::vector<const PlainTensor*>& inputs);

}  // namespace leanseg::runtime
