// The reference interpreter: whole zoo graphs against LibTorch's eval forward, and single
// operators against hand-computed values and against LibTorch's functional ops.
#include <chrono>
#include <cmath>

#include "leanseg/error.h"
#include "leanseg/graph_export.h"
#include "model_test_util.h"
#include "runtime/reference.h"
#include "test_util.h"

namespace leanseg {
namespace {

using runtime::PlainTensor;
using runtime::reference_op;
using Ints = std::vector<int64_t>;
using Floats = std::vector<float>;

constexpr double kRelativeTolerance = 1e-4;  // max |Δlogit| / (logit range), as for ONNX

PlainTensor from_torch(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return PlainTensor::floats(c.sizes().vec(), Floats(c.data_ptr<float>(), c.data_ptr<float>() + c.numel()));
}

torch::Tensor to_torch(const PlainTensor& t) {
  return torch::from_blob(const_cast<float*>(t.f32.data()), t.shape, torch::kFloat32).clone();
}

GraphNode node(const std::string& op, std::vector<GraphAttribute> attributes = {}) {
  return {op, "n", {}, {"y"}, std::move(attributes)};
}

// Runs one operator on the given operands (nullptr: omitted optional input).
PlainTensor run(const GraphNode& n, const std::vector<const PlainTensor*>& inputs) {
  auto outs = reference_op(n, inputs);
  EXPECT_EQ(outs.size(), 1u);
  return outs.at(0);
}

void expect_values(const PlainTensor& t, const Ints& shape, const Floats& values, float tol = 1e-6f) {
  EXPECT_EQ(t.shape, shape);
  ASSERT_EQ(t.f32.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_NEAR(t.f32[i], values[i], tol) << "element " << i;
}

double max_abs_diff(const PlainTensor& ours, const torch::Tensor& expected) {
  EXPECT_EQ(ours.shape, expected.sizes().vec());
  if (ours.shape != expected.sizes().vec()) return 1e9;
  return (to_torch(ours) - expected).abs().max().item<double>();
}

// --- whole models --------------------------------------------------------------------------------

class ReferenceZoo : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceZoo, MatchesLibTorch) {
  auto model = test::random_model(GetParam());
  GraphInputShape shape;
  shape.height = shape.width = 64;
  const Graph graph = model_graph(*model, shape);
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({1, 1, 64, 64});
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = model->forward(x);
  }
  const auto start = std::chrono::steady_clock::now();
  const auto values = runtime::run_reference(graph, {{"image", from_torch(x)}});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const PlainTensor& logits = values.at("logits");
  ASSERT_EQ(logits.shape, expected.sizes().vec());
  const double rel = test::relative_difference(to_torch(logits), expected);
  std::printf("[ reference] %s 64x64: max |Δlogit| / range = %.3g, %.2f s\n", GetParam().c_str(), rel, seconds);
  RecordProperty("relative_difference", std::to_string(rel));
  EXPECT_LE(rel, kRelativeTolerance);
}

// `unet` is left out: the same blocks as unet-32, but too slow for naive loops.
INSTANTIATE_TEST_SUITE_P(Reference, ReferenceZoo,
                         ::testing::Values("mobilenet-aspp-se-unet", "mobilenet-aspp-se-unet-lite", "unet-32",
                                           "efficient-unet", "unet-resnet18"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

// Non-square input and batch 2 through the attention's Reshape(·, Shape(x)): catches swapped axes.
TEST(Reference, NonSquareBatchOfTwoMatchesLibTorch) {
  auto model = test::random_model("efficient-unet");
  GraphInputShape shape;
  shape.height = 32;
  shape.width = 64;
  shape.dynamic_batch = true;
  const Graph graph = model_graph(*model, shape);
  torch::manual_seed(4);
  const torch::Tensor x = torch::randn({2, 1, 32, 64});
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = model->forward(x);
  }
  const auto values = runtime::run_reference(graph, {{"image", from_torch(x)}});
  EXPECT_LE(test::relative_difference(to_torch(values.at("logits")), expected), kRelativeTolerance);
}

TEST(Reference, RunChecksInputsAndNamesUnknownOperators) {
  Graph g;
  g.name = "g";
  g.inputs.push_back({"image", {1, 1, 2, 2}, {"", "", "", ""}});
  g.nodes.push_back({"FancyConv", "fancy", {"image"}, {"fancy"}, {}});
  g.outputs.push_back({"fancy", {1, 1, 2, 2}, {"", "", "", ""}});
  const PlainTensor x = PlainTensor::floats({1, 1, 2, 2}, {1, 2, 3, 4});
  EXPECT_ERROR_CONTAINS(runtime::run_reference(g, {{"image", x}}),
                        "reference: FancyConv node 'fancy': operator FancyConv is not supported");
  EXPECT_ERROR_CONTAINS(runtime::run_reference(g, {}), "graph 'g' needs input 'image'");
  EXPECT_ERROR_CONTAINS(runtime::run_reference(g, {{"image", PlainTensor::floats({1, 1, 4}, {1, 2, 3, 4})}}),
                        "input 'image' has shape [1, 1, 4], the graph expects [1, 1, 2, 2]");
  EXPECT_ERROR_CONTAINS(runtime::run_reference(g, {{"image", x}, {"extra", x}}), "'extra' is not an input of graph 'g'");
}

// --- single operators: hand-computed values ------------------------------------------------------

// Two groups (each output channel sees one input channel), dilation 2, stride 2, padding 1 on
// 3×3 inputs: every tap lands on the centre pixel or in the padding.
TEST(ReferenceOps, ConvWithGroupsDilationStrideAndPads) {
  const auto x = PlainTensor::floats({1, 2, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9,  //
                                                    10, 20, 30, 40, 50, 60, 70, 80, 90});
  const auto w = PlainTensor::floats({2, 1, 2, 2}, {1, 0, 0, 1, 1, 2, 3, 4});
  const auto b = PlainTensor::floats({2}, {0.5f, -1});
  const GraphNode n = node("Conv", {GraphAttribute::of("group", int64_t{2}), GraphAttribute::of("dilations", Ints{2, 2}),
                                    GraphAttribute::of("strides", Ints{2, 2}), GraphAttribute::of("pads", Ints{1, 1, 1, 1}),
                                    GraphAttribute::of("kernel_shape", Ints{2, 2})});
  // Output (oh, ow) reads input (2·oh − 1 + 2·i, 2·ow − 1 + 2·j) for tap (i, j).
  expect_values(run(n, {&x, &w, &b}), {1, 2, 2, 2}, {5.5f, 0.5f, 0.5f, 5.5f, 199, 149, 99, 49});
  expect_values(run(n, {&x, &w, nullptr}), {1, 2, 2, 2}, {5, 0, 0, 5, 200, 150, 100, 50});
}

TEST(ReferenceOps, ConvAsymmetricPads) {
  const auto x = PlainTensor::floats({1, 1, 2, 2}, {1, 2, 3, 4});
  const auto w = PlainTensor::floats({1, 1, 1, 1}, {2});
  // One row of zeros on top, one column on the right.
  const GraphNode n = node("Conv", {GraphAttribute::of("pads", Ints{1, 0, 0, 1})});
  expect_values(run(n, {&x, &w}), {1, 1, 3, 3}, {0, 0, 0, 2, 4, 0, 6, 8, 0});
}

// Stride 2 with a 2×2 kernel: every input pixel writes its own scaled copy of the kernel.
TEST(ReferenceOps, ConvTransposeStrideTwo) {
  const auto x = PlainTensor::floats({1, 1, 2, 2}, {1, 2, 3, 4});
  const auto w = PlainTensor::floats({1, 1, 2, 2}, {1, 10, 100, 1000});
  const auto b = PlainTensor::floats({1}, {0.5f});
  const GraphNode n = node("ConvTranspose", {GraphAttribute::of("strides", Ints{2, 2})});
  expect_values(run(n, {&x, &w, &b}), {1, 1, 4, 4},
                {1.5f, 10.5f, 2.5f, 20.5f,  //
                 100.5f, 1000.5f, 200.5f, 2000.5f,  //
                 3.5f, 30.5f, 4.5f, 40.5f,  //
                 300.5f, 3000.5f, 400.5f, 4000.5f});
}

// Kernel 3, stride 2, pad 1: neighbouring pixels overlap on the shared border rows/columns.
TEST(ReferenceOps, ConvTransposeOverlapAndPads) {
  const auto x = PlainTensor::floats({1, 1, 1, 2}, {1, 2});
  const auto w = PlainTensor::floats({1, 1, 1, 3}, {1, 10, 100});
  const GraphNode n = node("ConvTranspose", {GraphAttribute::of("strides", Ints{1, 2}), GraphAttribute::of("pads", Ints{0, 1, 0, 1})});
  // Unpadded row: 1·[1 10 100] at 0 and 2·[1 10 100] at 2 → [1, 10, 102, 20, 200]; crop 1 each side.
  expect_values(run(n, {&x, &w}), {1, 1, 1, 3}, {10, 102, 20});
}

TEST(ReferenceOps, SoftmaxOverOneAxis) {
  const auto x = PlainTensor::floats({2, 3}, {1, 2, 3, 0, 0, 0});
  expect_values(run(node("Softmax", {GraphAttribute::of("axis", int64_t{-1})}), {&x}), {2, 3},
                {0.09003057f, 0.24472847f, 0.66524096f, 1.0f / 3, 1.0f / 3, 1.0f / 3});
  // Opset-13 semantics: axis 0 normalises each column on its own (not the flattened [0:] block).
  const auto y = PlainTensor::floats({2, 2}, {0, std::log(3.0f), 0, 0});
  expect_values(run(node("Softmax", {GraphAttribute::of("axis", int64_t{0})}), {&y}), {2, 2}, {0.5f, 0.75f, 0.5f, 0.25f});
  // Default axis is -1 and large values do not overflow.
  const auto z = PlainTensor::floats({1, 2}, {1000, 1000});
  expect_values(run(node("Softmax"), {&z}), {1, 2}, {0.5f, 0.5f});
}

TEST(ReferenceOps, BatchedMatMul) {
  const auto a = PlainTensor::floats({2, 2, 3}, {1, 2, 3, 4, 5, 6,  //
                                                 1, 0, 0, 0, 1, 0});
  const auto b = PlainTensor::floats({2, 3, 1}, {1, 1, 1,  //
                                                 7, 8, 9});
  expect_values(run(node("MatMul"), {&a, &b}), {2, 2, 1}, {6, 15, 7, 8});
  // A batch axis of 1 broadcasts.
  const auto one = PlainTensor::floats({1, 3, 1}, {1, 0, -1});
  expect_values(run(node("MatMul"), {&a, &one}), {2, 2, 1}, {-2, -2, 1, 0});
  const auto bad = PlainTensor::floats({2, 2, 1}, {1, 2, 3, 4});
  EXPECT_ERROR_CONTAINS(run(node("MatMul"), {&a, &bad}), "inner dimensions of [2, 2, 3] and [2, 2, 1] differ");
}

TEST(ReferenceOps, ReshapeCopiesZerosAndInfersMinusOne) {
  Floats values(24);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  const auto x = PlainTensor::floats({2, 3, 4}, values);
  const auto shape = PlainTensor::ints({2}, {0, -1});
  expect_values(run(node("Reshape"), {&x, &shape}), {2, 12}, values);
  const auto shape4 = PlainTensor::ints({4}, {0, 2, -1, 1});
  expect_values(run(node("Reshape"), {&x, &shape4}), {2, 2, 6, 1}, values);
  const auto two_inferred = PlainTensor::ints({2}, {-1, -1});
  EXPECT_ERROR_CONTAINS(run(node("Reshape"), {&x, &two_inferred}), "has more than one -1");
  const auto wrong = PlainTensor::ints({2}, {5, -1});
  EXPECT_ERROR_CONTAINS(run(node("Reshape"), {&x, &wrong}), "cannot infer the -1 of [5, -1] for input [2, 3, 4]");
  const auto floats_shape = PlainTensor::floats({2}, {0, -1});
  EXPECT_ERROR_CONTAINS(run(node("Reshape"), {&x, &floats_shape}), "input 2 should be int64, got float");
}

// Reshape to the Shape of another value, as the attention block does, through run_reference.
TEST(ReferenceOps, ReshapeToAShapeNodesOutput) {
  Graph g;
  g.name = "g";
  g.inputs.push_back({"x", {1, 2, 2, 3}, {"", "", "", ""}});
  g.inputs.push_back({"flat", {1, 2, 6}, {"", "", ""}});
  g.nodes.push_back({"Shape", "shape", {"x"}, {"shape"}, {}});
  g.nodes.push_back({"Reshape", "y", {"flat", "shape"}, {"y"}, {}});
  g.outputs.push_back({"y", {1, 2, 2, 3}, {"", "", "", ""}});
  Floats v(12);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.5f;
  const auto values = runtime::run_reference(g, {{"x", PlainTensor::floats({1, 2, 2, 3}, Floats(12))},
                                                 {"flat", PlainTensor::floats({1, 2, 6}, v)}});
  EXPECT_TRUE(values.at("shape").is_int);
  EXPECT_EQ(values.at("shape").i64, (Ints{1, 2, 2, 3}));
  EXPECT_EQ(values.at("shape").shape, (Ints{4}));
  expect_values(values.at("y"), {1, 2, 2, 3}, v);
}

TEST(ReferenceOps, BroadcastingAddAndMul) {
  const auto x = PlainTensor::floats({1, 2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  const auto scalar = PlainTensor::floats({}, {10});
  expect_values(run(node("Add"), {&x, &scalar}), {1, 2, 2, 2}, {11, 12, 13, 14, 15, 16, 17, 18});
  expect_values(run(node("Mul"), {&scalar, &x}), {1, 2, 2, 2}, {10, 20, 30, 40, 50, 60, 70, 80});
  const auto per_channel = PlainTensor::floats({2, 1, 1}, {100, 200});  // a [C, 1, 1] initializer
  expect_values(run(node("Add"), {&x, &per_channel}), {1, 2, 2, 2}, {101, 102, 103, 104, 205, 206, 207, 208});
  const auto pooled = PlainTensor::floats({1, 2, 1, 1}, {-1, 2});  // SE's [N, C, 1, 1] scale
  expect_values(run(node("Mul"), {&x, &pooled}), {1, 2, 2, 2}, {-1, -2, -3, -4, 10, 12, 14, 16});
  // Both sides broadcast: [2, 1] + [1, 3] → [2, 3].
  const auto col = PlainTensor::floats({2, 1}, {1, 2});
  const auto row = PlainTensor::floats({1, 3}, {10, 20, 30});
  expect_values(run(node("Add"), {&col, &row}), {2, 3}, {11, 21, 31, 12, 22, 32});
  const auto three = PlainTensor::floats({3}, {1, 2, 3});
  EXPECT_ERROR_CONTAINS(run(node("Add"), {&x, &three}), "shapes [1, 2, 2, 2] and [3] do not broadcast");
}

TEST(ReferenceOps, ElementwiseActivations) {
  const auto x = PlainTensor::floats({4}, {-2, -0.5f, 0.5f, 9});
  expect_values(run(node("Relu"), {&x}), {4}, {0, 0, 0.5f, 9});
  expect_values(run(node("Sigmoid"), {&x}), {4}, {0.11920292f, 0.37754067f, 0.62245933f, 0.99987661f});
  // ReLU6 as the exporter writes it (HardSigmoid α = 1/6, β = 0, then ×6) and ONNX's defaults.
  const GraphNode relu6 = node("HardSigmoid", {GraphAttribute::of("alpha", 1.0f / 6), GraphAttribute::of("beta", 0.0f)});
  expect_values(run(relu6, {&x}), {4}, {0, 0, 0.5f / 6, 1});
  expect_values(run(node("HardSigmoid"), {&x}), {4}, {0.1f, 0.4f, 0.6f, 1});
}

TEST(ReferenceOps, ConcatTransposeAndShape) {
  const auto a = PlainTensor::floats({1, 1, 2}, {1, 2});
  const auto b = PlainTensor::floats({1, 2, 2}, {3, 4, 5, 6});
  expect_values(run(node("Concat", {GraphAttribute::of("axis", int64_t{1})}), {&a, &b}), {1, 3, 2}, {1, 2, 3, 4, 5, 6});
  const auto c = PlainTensor::floats({1, 2, 1}, {7, 8});
  expect_values(run(node("Concat", {GraphAttribute::of("axis", int64_t{-1})}), {&b, &c}), {1, 2, 3}, {3, 4, 7, 5, 6, 8});
  EXPECT_ERROR_CONTAINS(run(node("Concat", {GraphAttribute::of("axis", int64_t{1})}), {&a, &c}), "differ outside axis 1");

  const auto x = PlainTensor::floats({1, 2, 3}, {1, 2, 3, 4, 5, 6});
  expect_values(run(node("Transpose", {GraphAttribute::of("perm", Ints{0, 2, 1})}), {&x}), {1, 3, 2}, {1, 4, 2, 5, 3, 6});
  expect_values(run(node("Transpose"), {&x}), {3, 2, 1}, {1, 4, 2, 5, 3, 6});  // default: reversed axes
  EXPECT_ERROR_CONTAINS(run(node("Transpose", {GraphAttribute::of("perm", Ints{0, 0, 1})}), {&x}), "is not a permutation");

  const PlainTensor s = run(node("Shape"), {&x});
  EXPECT_TRUE(s.is_int);
  EXPECT_EQ(s.i64, (Ints{1, 2, 3}));
}

TEST(ReferenceOps, PoolingAndInstanceNormalization) {
  const auto x = PlainTensor::floats({1, 1, 2, 4}, {1, 5, 2, 0, -3, 4, 8, 7});
  const GraphNode pool = node("MaxPool", {GraphAttribute::of("kernel_shape", Ints{2, 2}), GraphAttribute::of("strides", Ints{2, 2})});
  expect_values(run(pool, {&x}), {1, 1, 1, 2}, {5, 8});
  // Padding never wins the max, even against negative values.
  const auto neg = PlainTensor::floats({1, 1, 1, 2}, {-5, -7});
  const GraphNode padded = node("MaxPool", {GraphAttribute::of("kernel_shape", Ints{1, 2}), GraphAttribute::of("pads", Ints{0, 1, 0, 1})});
  expect_values(run(padded, {&neg}), {1, 1, 1, 3}, {-5, -5, -7});

  expect_values(run(node("GlobalAveragePool"), {&x}), {1, 1, 1, 1}, {3});

  const auto y = PlainTensor::floats({1, 2, 1, 4}, {1, 2, 3, 4, 10, 10, 10, 10});
  const auto scale = PlainTensor::floats({2}, {2, 1});
  const auto bias = PlainTensor::floats({2}, {1, -1});
  const GraphNode norm = node("InstanceNormalization", {GraphAttribute::of("epsilon", 1e-5f)});
  // Channel 0: mean 2.5, variance 1.25. Channel 1 is constant: (x − mean) is 0, only the bias stays.
  const float k = 2.0f / std::sqrt(1.25f + 1e-5f);
  expect_values(run(norm, {&y, &scale, &bias}), {1, 2, 1, 4},
                {1 - 1.5f * k, 1 - 0.5f * k, 1 + 0.5f * k, 1 + 1.5f * k, -1, -1, -1, -1}, 1e-5f);
}

// --- single operators: randomized against LibTorch -------------------------------------------------

TEST(ReferenceOps, ConvMatchesLibTorchOnRandomGeometries) {
  torch::manual_seed(21);
  struct Case {
    int64_t in, out, group, k, stride, pad, dilation, h, w;
  };
  for (const Case c : {Case{4, 6, 2, 3, 1, 1, 1, 7, 9}, Case{6, 6, 6, 3, 2, 2, 2, 9, 8}, Case{3, 5, 1, 5, 2, 2, 1, 11, 6},
                       Case{4, 8, 4, 1, 1, 0, 1, 5, 5}, Case{2, 4, 1, 3, 3, 0, 3, 13, 10}}) {
    const auto x = torch::randn({2, c.in, c.h, c.w});
    const auto w = torch::randn({c.out, c.in / c.group, c.k, c.k});
    const auto b = torch::randn({c.out});
    const GraphNode n = node("Conv", {GraphAttribute::of("group", c.group), GraphAttribute::of("strides", Ints{c.stride, c.stride}),
                                      GraphAttribute::of("pads", Ints{c.pad, c.pad, c.pad, c.pad}),
                                      GraphAttribute::of("dilations", Ints{c.dilation, c.dilation})});
    const auto px = from_torch(x), pw = from_torch(w), pb = from_torch(b);
    const auto expected = torch::conv2d(x, w, b, c.stride, c.pad, c.dilation, c.group);
    EXPECT_LE(max_abs_diff(run(n, {&px, &pw, &pb}), expected), 1e-4) << "group " << c.group << " k " << c.k;
  }
}

TEST(ReferenceOps, ConvTransposeMatchesLibTorchOnRandomGeometries) {
  torch::manual_seed(22);
  struct Case {
    int64_t in, out, group, k, stride, pad, dilation, h, w;
  };
  for (const Case c : {Case{4, 6, 2, 2, 2, 0, 1, 5, 7}, Case{3, 2, 1, 3, 2, 1, 1, 4, 6}, Case{4, 4, 4, 4, 2, 1, 1, 3, 3},
                       Case{2, 3, 1, 3, 1, 1, 2, 6, 5}}) {
    const auto x = torch::randn({2, c.in, c.h, c.w});
    const auto w = torch::randn({c.in, c.out / c.group, c.k, c.k});
    const auto b = torch::randn({c.out});
    const GraphNode n =
        node("ConvTranspose", {GraphAttribute::of("group", c.group), GraphAttribute::of("strides", Ints{c.stride, c.stride}),
                               GraphAttribute::of("pads", Ints{c.pad, c.pad, c.pad, c.pad}),
                               GraphAttribute::of("dilations", Ints{c.dilation, c.dilation})});
    const auto px = from_torch(x), pw = from_torch(w), pb = from_torch(b);
    const auto expected = torch::conv_transpose2d(x, w, b, c.stride, c.pad, 0, c.group, c.dilation);
    EXPECT_LE(max_abs_diff(run(n, {&px, &pw, &pb}), expected), 1e-4) << "group " << c.group << " k " << c.k;
  }
}

TEST(ReferenceOps, MatMulSoftmaxTransposeMatchLibTorch) {
  torch::manual_seed(23);
  const auto a = torch::randn({2, 3, 5, 7}), b = torch::randn({2, 3, 7, 4});
  const auto pa = from_torch(a), pb = from_torch(b);
  EXPECT_LE(max_abs_diff(run(node("MatMul"), {&pa, &pb}), torch::matmul(a, b)), 1e-5);
  for (int64_t axis : {0, 1, 2, -1}) {
    const GraphNode n = node("Softmax", {GraphAttribute::of("axis", axis)});
    EXPECT_LE(max_abs_diff(run(n, {&pa}), torch::softmax(a, axis)), 1e-6) << "axis " << axis;
  }
  const GraphNode t = node("Transpose", {GraphAttribute::of("perm", Ints{2, 0, 3, 1})});
  EXPECT_EQ(max_abs_diff(run(t, {&pa}), a.permute({2, 0, 3, 1})), 0.0);
}

}  // namespace
}  // namespace leanseg
