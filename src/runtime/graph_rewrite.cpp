#include "graph_rewrite.h"

#include <map>
#include <set>

namespace leanseg::runtime {
namespace {

float float_attr(const GraphNode& n, const char* name, float fallback) {
  const auto* a = n.attribute(name);
  return a ? a->f : fallback;
}

bool is_hard_sigmoid(const GraphNode& n, float alpha, float beta) {
  return n.op == "HardSigmoid" && float_attr(n, "alpha", 0.2f) == alpha && float_attr(n, "beta", 0.5f) == beta;
}

bool is_scalar_constant(const Graph& g, const std::string& name, float value) {
  const GraphTensor* t = g.initializer(name);
  return t && t->type == TensorType::F32 && t->f32.size() == 1 && t->f32[0] == value;
}

std::vector<int64_t> ints_attr(const GraphNode& n, const char* name, std::vector<int64_t> fallback) {
  const auto* a = n.attribute(name);
  return a ? a->ints : fallback;
}

// Kernel 2, stride 2, no padding; `groups` of 1 (dense) or the channel count (depthwise).
bool is_stride2_kernel2_transposed_conv(const GraphNode& n, const Graph& g, bool depthwise) {
  if (n.op != "ConvTranspose" || n.inputs.size() < 2) return false;
  const GraphTensor* w = g.initializer(n.inputs[1]);
  const auto* group = n.attribute("group");
  const int64_t groups = group ? group->i : 1;
  const bool grouping_ok = depthwise ? w && groups == w->shape[0] && w->shape[1] == 1 && groups > 1 : groups == 1;
  return w && w->shape.size() == 4 && w->shape[2] == 2 && w->shape[3] == 2 && grouping_ok &&
         ints_attr(n, "strides", {1, 1}) == std::vector<int64_t>{2, 2} &&
         ints_attr(n, "pads", {0, 0, 0, 0}) == std::vector<int64_t>{0, 0, 0, 0} &&
         ints_attr(n, "dilations", {1, 1}) == std::vector<int64_t>{1, 1} &&
         ints_attr(n, "output_padding", {0, 0}) == std::vector<int64_t>{0, 0};
}

// ConvTranspose weights [I, O, 2, 2] → 1×1 conv weights [4·O, I, 1, 1] with output channel
// (dy·2 + dx)·O + o, the DCR order DepthToSpace expects; the bias is repeated 4 times.
void rewrite_as_pixel_shuffle(GraphNode& n, const Graph& g, SimplifiedGraph& out) {
  const GraphTensor& w = *g.initializer(n.inputs[1]);
  const int64_t in = w.shape[0], oc = w.shape[1];
  GraphTensor w1;
  w1.name = n.inputs[1] + "#as_1x1";
  w1.shape = {4 * oc, in, 1, 1};
  w1.f32.resize(w.f32.size());
  for (int64_t i = 0; i < in; ++i)
    for (int64_t o = 0; o < oc; ++o)
      for (int64_t d = 0; d < 4; ++d) w1.f32[(d * oc + o) * in + i] = w.f32[(i * oc + o) * 4 + d];
  std::vector<std::string> inputs{n.inputs[0], w1.name};
  out.new_constants.push_back(std::move(w1));
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    const GraphTensor& b = *g.initializer(n.inputs[2]);
    GraphTensor b1;
    b1.name = n.inputs[2] + "#as_1x1";
    b1.shape = {4 * oc};
    for (int d = 0; d < 4; ++d) b1.f32.insert(b1.f32.end(), b.f32.begin(), b.f32.end());
    inputs.push_back(b1.name);
    out.new_constants.push_back(std::move(b1));
  }
  GraphNode conv;
  conv.op = "Conv";
  conv.name = n.name + "#as_1x1";
  conv.inputs = std::move(inputs);
  conv.outputs = {conv.name};
  conv.attributes = {GraphAttribute::of("kernel_shape", std::vector<int64_t>{1, 1})};
  out.nodes.push_back(std::move(conv));
  n.op = "DepthToSpace";
  n.inputs = {n.name + "#as_1x1"};
  n.attributes = {GraphAttribute::of("blocksize", int64_t{2})};  // mode DCR (ONNX's default)
}

}  // namespace

SimplifiedGraph simplify_for_engine(const Graph& graph) {
  std::map<std::string, int> readers;  // value → how many nodes / graph outputs read it
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const auto& in : graph.nodes[i].inputs) ++readers[in];
    for (const auto& out : graph.nodes[i].outputs) producer[out] = i;
  }
  for (const auto& v : graph.outputs) ++readers[v.name];
  auto produced_by = [&](const std::string& value) -> const GraphNode* {
    auto it = producer.find(value);
    return it == producer.end() ? nullptr : &graph.nodes[it->second];
  };

  SimplifiedGraph out;
  std::set<std::string> dropped;  // nodes folded into a later node
  std::vector<GraphNode> nodes = graph.nodes;
  for (auto& n : nodes) {
    if (n.op == "Mul" && n.inputs.size() == 2) {
      // ReLU6: Mul(HardSigmoid(x; 1/6, 0), 6)
      const GraphNode* hs = produced_by(n.inputs[0]);
      if (hs && is_hard_sigmoid(*hs, 1.0f / 6.0f, 0.0f) && readers[hs->outputs[0]] == 1 &&
          is_scalar_constant(graph, n.inputs[1], 6.0f)) {
        dropped.insert(hs->name);
        n.op = "Clip";
        n.inputs = {hs->inputs[0]};
        n.attributes = {GraphAttribute::of("min", 0.0f), GraphAttribute::of("max", 6.0f)};
      }
    } else if (n.op == "Add" && n.inputs.size() == 2) {
      // Exact broadcast: Add(y, Mul(HardSigmoid(y; 0, 1), p)) = Add(y, p)
      const GraphNode* mul = produced_by(n.inputs[1]);
      const GraphNode* ones = mul && mul->op == "Mul" ? produced_by(mul->inputs[0]) : nullptr;
      if (ones && is_hard_sigmoid(*ones, 0.0f, 1.0f) && ones->inputs[0] == n.inputs[0] &&
          readers[mul->outputs[0]] == 1 && readers[ones->outputs[0]] == 1) {
        dropped.insert(mul->name);
        dropped.insert(ones->name);
        n.inputs = {n.inputs[0], mul->inputs[1]};
      }
    }
  }
  for (auto& n : nodes) {
    if (dropped.count(n.name)) continue;
    if (is_stride2_kernel2_transposed_conv(n, graph, false)) rewrite_as_pixel_shuffle(n, graph, out);
    if (is_stride2_kernel2_transposed_conv(n, graph, true)) n.op = "DepthwiseUpsample2x";  // same inputs
    out.nodes.push_back(std::move(n));
  }
  return out;
}

}  // namespace leanseg::runtime
