#include "leanseg/graph_qdq.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "leanseg/error.h"

namespace leanseg {
namespace {

GraphTensor float_tensor(std::string name, std::vector<int64_t> shape, std::vector<float> values) {
  GraphTensor t;
  t.name = std::move(name);
  t.shape = std::move(shape);
  t.f32 = std::move(values);
  return t;
}

GraphTensor int8_tensor(std::string name, std::vector<int64_t> shape, std::vector<int8_t> values) {
  GraphTensor t;
  t.name = std::move(name);
  t.type = TensorType::I8;
  t.shape = std::move(shape);
  t.i8 = std::move(values);
  return t;
}

struct QuantizedWeight {
  GraphTensor codes, scale, zero_point;
};

// Symmetric int8 per index of `axis` (0 or 1) of a 4-D weight.
QuantizedWeight quantize_weight(const GraphTensor& w, int axis) {
  const int64_t a = w.shape[0], b = w.shape[1], k = w.shape[2] * w.shape[3];
  const int64_t channels = w.shape[static_cast<size_t>(axis)];
  std::vector<float> absmax(static_cast<size_t>(channels), 0.f);
  auto channel = [&](int64_t i, int64_t j) { return static_cast<size_t>(axis == 0 ? i : j); };
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j)
      for (int64_t t = 0; t < k; ++t)
        absmax[channel(i, j)] = std::max(absmax[channel(i, j)], std::abs(w.f32[static_cast<size_t>((i * b + j) * k + t)]));
  std::vector<float> scale(absmax.size());
  for (size_t c = 0; c < scale.size(); ++c) scale[c] = absmax[c] > 0 ? absmax[c] / 127.f : 1.f;
  std::vector<int8_t> codes(w.f32.size());
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j)
      for (int64_t t = 0; t < k; ++t) {
        const size_t e = static_cast<size_t>((i * b + j) * k + t);
        const float q = std::nearbyint(w.f32[e] / scale[channel(i, j)]);
        codes[e] = static_cast<int8_t>(std::clamp(q, -127.f, 127.f));
      }
  return {int8_tensor(w.name + "_quantized", w.shape, std::move(codes)), float_tensor(w.name + "_scale", {channels}, scale),
          int8_tensor(w.name + "_zero_point", {channels}, std::vector<int8_t>(static_cast<size_t>(channels), 0))};
}

GraphNode node(std::string op, std::string name, std::vector<std::string> inputs, std::string output,
               std::vector<GraphAttribute> attributes = {}) {
  GraphNode n;
  n.op = std::move(op);
  n.name = std::move(name);
  n.inputs = std::move(inputs);
  n.outputs = {std::move(output)};
  n.attributes = std::move(attributes);
  return n;
}

}  // namespace

Graph quantize_qdq(const Graph& g, const std::map<std::string, float>& activation_absmax) {
  Graph out = g;
  out.nodes.clear();
  std::set<std::string> quantized_weights;
  std::map<std::string, std::string> dequantized_activation;  // x → its Q/DQ output
  std::vector<GraphTensor> added;
  for (const auto& n : g.nodes) {
    GraphNode conv = n;
    if ((n.op == "Conv" || n.op == "ConvTranspose") && n.inputs.size() >= 2) {
      const GraphTensor* w = g.initializer(n.inputs[1]);
      if (w && w->type == TensorType::F32 && w->shape.size() == 4 && !quantized_weights.count(w->name)) {
        const int axis = n.op == "Conv" ? 0 : 1;
        QuantizedWeight q = quantize_weight(*w, axis);
        out.nodes.push_back(node("DequantizeLinear", n.name + "/weight_dequantize",
                                 {q.codes.name, q.scale.name, q.zero_point.name}, w->name,
                                 {GraphAttribute::of("axis", int64_t{axis})}));
        added.push_back(std::move(q.codes)), added.push_back(std::move(q.scale)), added.push_back(std::move(q.zero_point));
        quantized_weights.insert(w->name);
      }
      const std::string& x = n.inputs[0];
      auto a = activation_absmax.find(x);
      if (a != activation_absmax.end()) {
        auto done = dequantized_activation.find(x);
        if (done == dequantized_activation.end()) {
          const std::string base = x + "_int8";
          const float scale = a->second > 0 ? a->second / 127.f : 1.f;
          added.push_back(float_tensor(base + "_scale", {}, {scale}));
          added.push_back(int8_tensor(base + "_zero_point", {}, {0}));
          out.nodes.push_back(node("QuantizeLinear", n.name + "/input_quantize", {x, base + "_scale", base + "_zero_point"},
                                   base + "_quantized"));
          out.nodes.push_back(node("DequantizeLinear", n.name + "/input_dequantize",
                                   {base + "_quantized", base + "_scale", base + "_zero_point"}, base + "_dequantized"));
          done = dequantized_activation.emplace(x, base + "_dequantized").first;
        }
        conv.inputs[0] = done->second;
      }
    }
    out.nodes.push_back(std::move(conv));
  }
  // The float weights are now outputs of DequantizeLinear nodes, not initializers.
  out.initializers.erase(std::remove_if(out.initializers.begin(), out.initializers.end(),
                                        [&](const GraphTensor& t) { return quantized_weights.count(t.name) > 0; }),
                         out.initializers.end());
  for (auto& t : added) out.initializers.push_back(std::move(t));
  out.validate();
  return out;
}

}  // namespace leanseg
