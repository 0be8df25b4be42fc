// A small, torch-free computation graph: what an exported model is. Operators are named and
// parameterised as in ONNX (Conv, ConvTranspose, Relu, Clip, Add, Mul, Concat, MaxPool,
// GlobalAveragePool, InstanceNormalization, Reshape, Transpose, Softmax, MatMul, Shape, ...),
// so the ONNX writer is a direct translation and a LibTorch-free runtime can execute it.
// Values are named by strings; nodes are in topological order.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace leanseg {

// I8: quantized weights of ONNX QDQ exports (graph_qdq.h); runtime files hold F32 and I64 only.
enum class TensorType { F32, I64, I8 };

struct GraphAttribute {
  enum class Kind { Int, Float, Ints };
  std::string name;
  Kind kind = Kind::Int;
  int64_t i = 0;
  float f = 0;
  std::vector<int64_t> ints;

  static GraphAttribute of(std::string name, int64_t v);
  static GraphAttribute of(std::string name, float v);
  static GraphAttribute of(std::string name, std::vector<int64_t> v);
};

struct GraphNode {
  std::string op;    // ONNX operator type
  std::string name;  // module path of the layer it comes from, unique in the graph
  std::vector<std::string> inputs, outputs;
  std::vector<GraphAttribute> attributes;

  const GraphAttribute* attribute(const std::string& attr_name) const;  // nullptr when absent
};

// A constant (weights, shapes). Only the vector matching `type` holds data.
struct GraphTensor {
  std::string name;
  TensorType type = TensorType::F32;
  std::vector<int64_t> shape;
  std::vector<float> f32;
  std::vector<int64_t> i64;
  std::vector<int8_t> i8;

  int64_t numel() const;
};

// A graph input or output: float tensor with a shape whose dynamic axes have a name.
struct GraphValue {
  std::string name;
  std::vector<int64_t> shape;            // -1 where dynamic
  std::vector<std::string> dim_names;    // per axis: "" for a fixed size, e.g. "batch" otherwise
};

struct Graph {
  std::string name;
  std::vector<GraphValue> inputs, outputs;
  std::vector<GraphNode> nodes;
  std::vector<GraphTensor> initializers;

  const GraphTensor* initializer(const std::string& tensor_name) const;  // nullptr when absent
  std::map<std::string, int> op_counts() const;                           // op type → nodes
  int64_t parameter_count() const;                                        // F32 and I8 initializer elements

  // Checks the graph is well formed: unique node names and value names, every node input
  // defined earlier (graph input, initializer or an earlier node's output), every output
  // produced, initializer data matching its shape. Throws Error naming the offending node.
  void validate() const;
};

}  // namespace leanseg
