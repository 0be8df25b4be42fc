// Per-op harness (in the manner of ncnn's test_layer): one call builds a graph of a single op
// (with what the engine fuses into it) and checks the engine against the naive reference
// interpreter at fp32, fp32 with Winograd, bf16 (AVX-512 CPUs) and int8, over tables of
// parameters. A failure prints the op's parameters and the precision, so the combination can be
// rebuilt by hand. The composite tests of test_engine_ops.cpp stay as fusion tests.
#include <sstream>

#include "test_graph.h"

namespace leanseg::runtime {
namespace {

// How far each precision may be from the reference, as a fraction of the reference's range
// (max - min of the output) plus an absolute floor: fp32 differs by summation order only;
// Winograd F(4x4, 3x3) adds its transforms' rounding; bf16 keeps 8 mantissa bits; int8 quantizes
// weights per channel and activations per tensor (calibrated on the input it then runs).
struct Tolerance {
  double relative, absolute;
};
Tolerance tolerance_of(Precision p, bool winograd) {
  if (p == Precision::I8) return {0.06, 1e-3};
  if (p == Precision::BF16) return {0.03, 1e-2};
  return winograd ? Tolerance{2e-5, 1e-5} : Tolerance{1e-5, 1e-5};
}

struct Variant {
  Precision precision;
  bool winograd;
  const char* name;
};
const Variant kVariants[] = {{Precision::F32, false, "fp32"},
                             {Precision::F32, true, "fp32+winograd"},
                             {Precision::BF16, false, "bf16"},
                             {Precision::I8, false, "int8"}};

// Checks one single-op model at every precision this CPU runs; `what` names the op's parameters
// in failure messages. Returns how many precisions ran.
int check_op(RuntimeModel m, const std::string& what) {
  int ran = 0;
  const auto& s = m.graph.inputs[0].shape;
  const auto input = random_input(static_cast<size_t>(s[1] * s[2] * s[3]), 3);
  const auto ref = run_reference(m.graph, {{"image", PlainTensor::floats(s, input)}}).at("logits");
  const auto [lo, hi] = std::minmax_element(ref.f32.begin(), ref.f32.end());
  const double range = *hi - *lo;
  m.activation_absmax = calibrate_activations(m.graph, {PlainTensor::floats(s, input)}, 100);
  for (const Variant& v : kVariants) {
    if (v.precision == Precision::BF16 && !bf16_is_supported_on_this_cpu()) continue;
    std::vector<float> out;
    try {  // a refusal names the combination too, not only a wrong number
      Engine e = Engine::from_model(m, {v.precision, 1, v.winograd});
      out = e.run(input.data());
    } catch (const std::exception& error) {
      ADD_FAILURE() << what << " at " << v.name << ": " << error.what();
      continue;
    }
    EXPECT_EQ(static_cast<int64_t>(out.size()), ref.numel()) << what << " at " << v.name;
    if (static_cast<int64_t>(out.size()) != ref.numel()) continue;
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      const double d = std::abs(double(out[i]) - ref.f32[i]);
      if (d > worst) worst = d, at = i;
    }
    const Tolerance t = tolerance_of(v.precision, v.winograd);
    EXPECT_LE(worst, t.relative * range + t.absolute)
        << what << " at " << v.name << ": max |engine - reference| " << worst << " at element " << at
        << " (reference range " << range << ")";
    ++ran;
  }
  return ran;
}

// ReLU6 as the exporter writes it (the engine rewrites it into a clip it can fuse).
std::string relu6(TestGraph& t, const std::string& x) {
  auto hs = t.node("HardSigmoid", x + "/hs", {x}, {Attr::of("alpha", 1.0f / 6.0f), Attr::of("beta", 0.0f)});
  return t.node("Mul", x + "/relu6", {hs, t.scalar(x + "/six", 6.0f)});
}

int64_t conv_output_side(int64_t in, int64_t k, int64_t stride, int64_t dilation) {
  const int64_t pad = dilation * (k - 1) / 2;
  return (in + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
}

// One convolution and what the engine fuses after it: a residual Add (of a second conv's output
// over the same input, so the shapes match) and an activation.
struct ConvCase {
  int64_t k, stride, dilation;
  int64_t groups;  // 0: depthwise (groups = channels)
  bool bias;
  std::string activation;  // "", "Relu", "ReLU6" or "Sigmoid"
  bool fused_add;
  int64_t h, w;
  int64_t channels = 8;  // in and out

  std::string str() const {
    std::ostringstream o;
    o << "Conv k" << k << " stride " << stride << " dilation " << dilation << " groups "
      << (groups ? std::to_string(groups) : "C") << (bias ? " bias" : " no-bias")
      << (fused_add ? " +add" : "") << (activation.empty() ? "" : " +" + activation) << " on " << channels << "x" << h
      << "x" << w;
    return o.str();
  }
  RuntimeModel build() const {
    const int64_t c = channels;
    TestGraph t(c, h, w);
    const int64_t g = groups ? groups : c;
    auto y = t.conv("op", "image", c, c, k, stride, g, dilation, bias);
    if (fused_add) y = t.node("Add", "residual", {y, t.conv("other", "image", c, c, k, stride, g, dilation, bias)});
    if (activation == "ReLU6")
      y = relu6(t, y);
    else if (!activation.empty())
      y = t.node(activation, "act", {y});
    const int64_t oh = conv_output_side(h, k, stride, dilation), ow = conv_output_side(w, k, stride, dilation);
    return t.finish_with_shape(y, {1, c, oh, ow});
  }
};

// Every kernel, stride, dilation and grouping, crossed; bias, activation, fused add and the
// (odd and even) image sizes cycle through the crossing so each value meets many others.
TEST(OpHarness, ConvolutionsOverKernelStrideDilationGroupsBiasActivationAndFusedAdd) {
  const std::vector<std::string> activations = {"", "Relu", "ReLU6", "Sigmoid"};
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{9, 7}, {16, 16}, {13, 10}};
  int index = 0, cases = 0;
  for (int64_t k : {1, 3, 5, 7})
    for (int64_t stride : {1, 2})
      for (int64_t dilation : {1, 2})
        for (int64_t groups : {1, 2, 0}) {
          if (k == 1 && dilation == 2) continue;  // a 1x1 kernel has no taps to spread
          const auto [h, w] = sizes[index % sizes.size()];
          const ConvCase c{k, stride, dilation, groups, index % 2 == 0, activations[index % activations.size()],
                           (index / 2) % 2 == 1, h, w};
          ++index;
          cases += check_op(c.build(), c.str()) > 0;
        }
  EXPECT_EQ(cases, 4 * 2 * 2 * 3 - 2 * 3);
}

// ResNet's BasicBlock ends in conv3x3 → Add → ReLU, the Add's other operand being the block's
// input (identity) or a projection conv (stride 2); the crossing above never pairs a fused add
// with ReLU, so these rows do.
TEST(OpHarness, ResidualAddThenReluAsInResNetBlocks) {
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{9, 7}, {16, 16}}) {
    for (int64_t stride : {1, 2}) {
      const ConvCase c{3, stride, 1, 1, false, "Relu", true, h, w};
      EXPECT_GT(check_op(c.build(), c.str()), 0);
    }
    TestGraph t(4, h, w);
    auto y = t.conv("op", "image", 4, 4, 3, 1, 1, 1, false);
    y = t.node("Relu", "act", {t.node("Add", "residual", {y, "image"})});
    EXPECT_GT(check_op(t.finish_with_shape(y, {1, 4, h, w}),
                       "Conv k3 + identity add + Relu on " + std::to_string(h) + "x" + std::to_string(w)),
              0);
  }
}

// The 3x3 convolutions the Winograd kernel takes (dense, stride 1, no dilation, channels in
// multiples of 16, maps of 32x32 pixels or more) over sizes whose 4x4 output tiles overhang the
// map's edge.
TEST(OpHarness, WinogradConvolutionsOnOddSizes) {
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{33, 35}, {37, 41}, {45, 33}, {32, 34}}) {
    for (bool relu : {false, true}) {
      const ConvCase c{3, 1, 1, 1, true, relu ? "Relu" : "", false, h, w, 16};
      RuntimeModel m = c.build();
      EXPECT_EQ(Engine::from_model(m, {Precision::F32, 1, true}).winograd_layers(), 1u) << c.str();
      check_op(std::move(m), c.str());
    }
  }
}

// Transposed convolutions as decoders use them: kernel 2 and 4 at stride 2, kernel 3 at stride
// 1, dense, grouped and depthwise, with and without bias.
TEST(OpHarness, TransposedConvolutions) {
  struct Case {
    int64_t k, stride, pad, groups;
    bool bias;
  };
  for (const Case& c : {Case{2, 2, 0, 1, true}, Case{2, 2, 0, 8, false}, Case{4, 2, 1, 1, false},
                        Case{4, 2, 1, 2, true}, Case{3, 1, 1, 1, true}, Case{3, 1, 1, 8, true}}) {
    for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{7, 5}, {8, 8}}) {
      const int64_t ch = 8;
      TestGraph t(ch, h, w);
      std::vector<std::string> in{"image", t.constant("up.weight", {ch, ch / c.groups, c.k, c.k}, -0.5f, 0.5f)};
      if (c.bias) in.push_back(t.constant("up.bias", {ch}));
      auto y = t.node("ConvTranspose", "up", in,
                      {Attr::of("kernel_shape", Ints{c.k, c.k}), Attr::of("strides", Ints{c.stride, c.stride}),
                       Attr::of("pads", Ints{c.pad, c.pad, c.pad, c.pad}), Attr::of("group", c.groups)});
      const int64_t oh = (h - 1) * c.stride - 2 * c.pad + c.k, ow = (w - 1) * c.stride - 2 * c.pad + c.k;
      std::ostringstream what;
      what << "ConvTranspose k" << c.k << " stride " << c.stride << " pad " << c.pad << " groups " << c.groups
           << (c.bias ? " bias" : " no-bias") << " on " << h << "x" << w;
      check_op(t.finish_with_shape(y, {1, ch, oh, ow}), what.str());
    }
  }
}

// Pooling and the element-wise ops on a map no convolution produced (so nothing fuses them).
TEST(OpHarness, PoolingAndElementwiseOps) {
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{9, 7}, {16, 16}}) {
    for (auto [k, stride] : std::vector<std::pair<int64_t, int64_t>>{{2, 2}, {3, 2}, {3, 1}}) {
      TestGraph t(4, h, w);
      const int64_t pad = k == 3 ? 1 : 0;
      auto y = t.node("MaxPool", "pool", {"image"},
                      {Attr::of("kernel_shape", Ints{k, k}), Attr::of("strides", Ints{stride, stride}),
                       Attr::of("pads", Ints{pad, pad, pad, pad})});
      const int64_t oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
      check_op(t.finish_with_shape(y, {1, 4, oh, ow}),
               "MaxPool k" + std::to_string(k) + " stride " + std::to_string(stride) + " on " + std::to_string(h) + "x" +
                   std::to_string(w));
    }
    for (const std::string op : {"Relu", "Sigmoid", "ReLU6", "HardSigmoid"}) {
      TestGraph t(4, h, w);
      std::string y;
      if (op == "ReLU6")
        y = relu6(t, "image");
      else if (op == "HardSigmoid")
        y = t.node(op, "act", {"image"}, {Attr::of("alpha", 0.2f), Attr::of("beta", 0.5f)});
      else
        y = t.node(op, "act", {"image"});
      check_op(t.finish_with_shape(y, {1, 4, h, w}), op + " on " + std::to_string(h) + "x" + std::to_string(w));
    }
    // Binary ops: same shape, a per-channel constant, and a pooled (1x1) map broadcast over the image.
    for (const std::string op : {"Add", "Mul"}) {
      TestGraph t(4, h, w);
      auto same = t.node(op, "same", {"image", t.node("Relu", "r", {"image"})});
      auto channel = t.node(op, "channel", {same, t.constant("c", {4, 1, 1})});
      auto pooled = t.node(op, "pooled", {channel, t.node("GlobalAveragePool", "gap", {"image"})});
      check_op(t.finish_with_shape(pooled, {1, 4, h, w}),
               op + " (same shape, per-channel constant, pooled map) on " + std::to_string(h) + "x" + std::to_string(w));
    }
  }
}

}  // namespace
}  // namespace leanseg::runtime
