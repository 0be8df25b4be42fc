// Small hand-built runtime graphs for the engine's tests, and the comparison with the naive
// reference interpreter (src/runtime/reference.h) that every op test uses.
#pragma once
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "leanseg/runtime.h"
#include "runtime/calibrate.h"
#include "runtime/reference.h"

namespace leanseg::runtime {

using Attr = GraphAttribute;
using Ints = std::vector<int64_t>;

// A graph under construction: input "image" [1, C, H, W], output named by finish().
struct TestGraph {
  Graph g;
  std::mt19937 rng{42};

  TestGraph(int64_t c, int64_t h, int64_t w) {
    g.name = "test";
    g.inputs.push_back({"image", {1, c, h, w}, {"", "", "", ""}});
  }
  std::string constant(const std::string& name, Ints shape, float lo = -1, float hi = 1) {
    GraphTensor t;
    t.name = name;
    t.shape = shape;
    std::uniform_real_distribution<float> u(lo, hi);
    t.f32.resize(t.numel());
    for (auto& v : t.f32) v = u(rng);
    g.initializers.push_back(t);
    return name;
  }
  std::string scalar(const std::string& name, float v) {
    GraphTensor t;
    t.name = name;
    t.f32 = {v};
    g.initializers.push_back(t);
    return name;
  }
  std::string ints(const std::string& name, Ints v) {
    GraphTensor t;
    t.name = name;
    t.type = TensorType::I64;
    t.shape = {static_cast<int64_t>(v.size())};
    t.i64 = v;
    g.initializers.push_back(t);
    return name;
  }
  std::string node(const std::string& op, const std::string& name, std::vector<std::string> in,
                   std::vector<Attr> attrs = {}) {
    g.nodes.push_back({op, name, std::move(in), {name}, std::move(attrs)});
    return name;
  }
  std::string conv(const std::string& name, const std::string& x, int64_t cin, int64_t cout, int64_t k,
                   int64_t stride = 1, int64_t group = 1, int64_t dilation = 1, bool bias = true) {
    std::vector<std::string> in{x, constant(name + ".weight", {cout, cin / group, k, k}, -0.5f, 0.5f)};
    if (bias) in.push_back(constant(name + ".bias", {cout}));
    const int64_t pad = dilation * (k - 1) / 2;
    return node("Conv", name, in,
                {Attr::of("kernel_shape", Ints{k, k}), Attr::of("strides", Ints{stride, stride}),
                 Attr::of("pads", Ints{pad, pad, pad, pad}), Attr::of("dilations", Ints{dilation, dilation}),
                 Attr::of("group", group)});
  }
  RuntimeModel finish(const std::string& out, int64_t out_channels = 1) {
    const auto& in = g.inputs[0].shape;
    RuntimeModel m = finish_with_shape(out, {1, out_channels, in[2], in[3]});
    m.size_divisor = 4;  // small test images
    return m;
  }
  // The last node's output becomes "logits" of the given shape (its readers: none, it is the
  // output). Any input size (size divisor 1).
  RuntimeModel finish_with_shape(const std::string& out, Ints shape) {
    (void)out;
    g.nodes.back().outputs = {"logits"};
    g.outputs.push_back({"logits", std::move(shape), {"", "", "", ""}});
    g.validate();
    RuntimeModel m;
    m.graph = g;
    m.size_divisor = 1;
    return m;
  }
};

inline std::vector<float> random_input(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// Engine output vs the reference interpreter on the same input; returns max |Δ| (and the
// reference's range, max - min, in `range`).
inline double engine_vs_reference(const RuntimeModel& m, Precision precision = Precision::F32, bool winograd = false,
                           double* range = nullptr) {
  const auto& s = m.graph.inputs[0].shape;
  const auto input = random_input(static_cast<size_t>(s[1] * s[2] * s[3]), 3);
  const auto ref = run_reference(m.graph, {{"image", PlainTensor::floats(s, input)}}).at("logits");
  if (range) *range = *std::max_element(ref.f32.begin(), ref.f32.end()) - *std::min_element(ref.f32.begin(), ref.f32.end());
  Engine e = Engine::from_model(m, {precision, 1, winograd});
  const auto& out = e.run(input.data());
  EXPECT_EQ(static_cast<int64_t>(out.size()), ref.numel());
  double worst = 0;
  for (size_t i = 0; i < out.size() && i < ref.f32.size(); ++i) worst = std::max(worst, std::abs(double(out[i]) - ref.f32[i]));
  return worst;
}

// Calibrates `m` for int8 on the input engine_vs_reference uses; returns that input.
inline std::vector<PlainTensor> calibrate(RuntimeModel* m) {
  const auto& s = m->graph.inputs[0].shape;
  std::vector<PlainTensor> inputs{PlainTensor::floats(s, random_input(static_cast<size_t>(s[1] * s[2] * s[3]), 3))};
  m->activation_absmax = calibrate_activations(m->graph, inputs, 100);
  return inputs;
}

}  // namespace leanseg::runtime
