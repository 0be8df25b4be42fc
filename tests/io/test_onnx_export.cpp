// ONNX export: every model of the zoo is exported, accepted by ONNX's checker, loaded by a
// runtime nobody here wrote (OpenCV 4.6's DNN module) and compared with LibTorch's output.
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <opencv2/dnn.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "leanseg/error.h"
#include "leanseg/compress.h"
#include "leanseg/graph_export.h"
#include "leanseg/graph_qdq.h"
#include "leanseg/model_file.h"
#include "leanseg/onnx_export.h"
#include "model_test_util.h"
#include "runtime/calibrate.h"
#include "test_util.h"

namespace leanseg {
namespace {

constexpr double kRelativeTolerance = 1e-4;  // max |Δlogit| / (logit range)

using test::CliRun;
using test::random_model;
using test::relative_difference;
using test::run_cli;

torch::Tensor run_opencv(cv::dnn::Net& net, const torch::Tensor& x) {
  torch::Tensor input = x.contiguous();
  const std::vector<int> shape(input.sizes().begin(), input.sizes().end());
  net.setInput(cv::Mat(static_cast<int>(shape.size()), shape.data(), CV_32F, input.data_ptr<float>()), "image");
  cv::Mat out = net.forward();
  std::vector<int64_t> out_shape(out.size.p, out.size.p + out.dims);
  return torch::from_blob(out.ptr<float>(), out_shape, torch::kFloat32).clone();
}

// Runs `model` on x in LibTorch and the exported file in OpenCV; returns the relative difference.
double compare_with_opencv(SegmentationModel& model, const std::string& onnx_path, const torch::Tensor& x) {
  cv::dnn::Net net = cv::dnn::readNetFromONNX(onnx_path);
  torch::Tensor reference;
  {
    torch::NoGradGuard no_grad;
    reference = model->forward(x);
  }
  const torch::Tensor ours = run_opencv(net, x);
  EXPECT_EQ(ours.sizes(), reference.sizes());
  if (ours.sizes() != reference.sizes()) return 1e9;
  return relative_difference(ours, reference);
}

onnx::ModelProto read_model_proto(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  onnx::ModelProto model;
  EXPECT_TRUE(model.ParseFromIstream(&in)) << path;
  return model;
}

bool starts_with_module_path(const std::string& name, const std::vector<std::string>& module_paths) {
  for (const auto& p : module_paths)
    if (name.rfind(p, 0) == 0 && (name.size() == p.size() || std::string("./_").find(name[p.size()]) != std::string::npos))
      return true;
  return false;
}

void expect_clean_graph(const Graph& graph, const torch::nn::Module& model) {
  std::vector<std::string> module_paths;
  for (const auto& m : model.named_modules("", /*include_self=*/false)) module_paths.push_back(m.key());
  const auto ops = graph.op_counts();
  EXPECT_EQ(ops.count("BatchNormalization"), 0u);
  EXPECT_EQ(ops.count("Dropout"), 0u);
  ASSERT_EQ(graph.inputs.size(), 1u);
  ASSERT_EQ(graph.outputs.size(), 1u);
  EXPECT_EQ(graph.inputs[0].name, "image");
  EXPECT_EQ(graph.outputs[0].name, "logits");
  for (const auto& t : graph.initializers) EXPECT_TRUE(starts_with_module_path(t.name, module_paths)) << t.name;
  for (const auto& n : graph.nodes) EXPECT_TRUE(starts_with_module_path(n.name, module_paths)) << n.name;
}

class OnnxZoo : public ::testing::TestWithParam<std::string> {};

TEST_P(OnnxZoo, CleanGraphCheckedAndOpenCvMatchesLibTorch) {
  auto model = random_model(GetParam());
  GraphInputShape shape;
  shape.height = 64;
  shape.width = 96;  // not square: catches swapped axes
  const Graph graph = model_graph(*model, shape);
  expect_clean_graph(graph, *model);

  test::TempDir dir;
  const std::string path = dir.file("model.onnx");
  write_onnx(graph, path, OnnxOptions{});
  EXPECT_NO_THROW(onnx::checker::check_model(path));
  const onnx::ModelProto proto = read_model_proto(path);
  EXPECT_EQ(proto.opset_import(0).version(), kOnnxDefaultOpset);
  EXPECT_EQ(proto.graph().input(0).name(), "image");
  EXPECT_EQ(proto.graph().output(0).name(), "logits");
  EXPECT_EQ(proto.graph().initializer_size(), static_cast<int>(graph.initializers.size()));

  torch::manual_seed(3);
  const double rel = compare_with_opencv(model, path, torch::randn({1, 1, 64, 96}));
  std::printf("[ onnx     ] %s: max |Δlogit| / range = %.3g\n", GetParam().c_str(), rel);
  RecordProperty("relative_difference", std::to_string(rel));
  EXPECT_LE(rel, kRelativeTolerance);
}

INSTANTIATE_TEST_SUITE_P(Onnx, OnnxZoo, ::testing::ValuesIn(model_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

TEST(OnnxExport, TwoChannelModelMatchesLibTorch) {
  auto model = random_model("mobilenet-aspp-se-unet-lite", 2);
  GraphInputShape shape;
  shape.height = shape.width = 64;
  test::TempDir dir;
  const std::string path = dir.file("two.onnx");
  write_onnx(model_graph(*model, shape), path, OnnxOptions{});
  torch::manual_seed(4);
  const double rel = compare_with_opencv(model, path, torch::randn({1, 2, 64, 64}));
  std::printf("[ onnx     ] mobilenet-aspp-se-unet-lite, 2 channels: max |Δlogit| / range = %.3g\n", rel);
  EXPECT_LE(rel, kRelativeTolerance);
}

// Structured pruning exports the smaller dense model, which OpenCV runs like LibTorch.
TEST(OnnxExport, StructurallyPrunedModelExportsSmallerAndMatches) {
  auto model = random_model("mobilenet-aspp-se-unet-lite");
  GraphInputShape shape;
  shape.height = shape.width = 64;
  const int64_t dense = model_graph(*model, shape).parameter_count();
  apply_structured(*model, structured_plan(*model, {0.5, false}));
  const Graph graph = model_graph(*model, shape);
  EXPECT_LT(graph.parameter_count(), dense);
  test::TempDir dir;
  const std::string path = dir.file("pruned.onnx");
  write_onnx(graph, path, OnnxOptions{});
  torch::manual_seed(8);
  EXPECT_LE(compare_with_opencv(model, path, torch::randn({1, 1, 64, 64})), kRelativeTolerance);
}

// ONNX's DequantizeLinear on a constant int8 weight, (q − zero_point) · scale along `axis`,
// folded into a float initializer. OpenCV 4.6 imports QDQ activations but not DequantizeLinear on
// a constant (it expects QLinearConv for int8 weights), so the weights are folded for it.
Graph fold_weight_dequantize(const Graph& g) {
  Graph out = g;
  out.nodes.clear();
  for (const auto& n : g.nodes) {
    const GraphTensor* q = n.op == "DequantizeLinear" ? g.initializer(n.inputs[0]) : nullptr;
    if (!q || q->type != TensorType::I8) {
      out.nodes.push_back(n);
      continue;
    }
    const GraphTensor* scale = g.initializer(n.inputs[1]);
    const int64_t axis = n.attribute("axis") ? n.attribute("axis")->i : 1;
    int64_t inner = 1;
    for (size_t d = static_cast<size_t>(axis) + 1; d < q->shape.size(); ++d) inner *= q->shape[d];
    GraphTensor w;
    w.name = n.outputs[0];
    w.shape = q->shape;
    for (int64_t e = 0; e < q->numel(); ++e)
      w.f32.push_back(q->i8[static_cast<size_t>(e)] * scale->f32[static_cast<size_t>((e / inner) % q->shape[axis])]);
    out.initializers.push_back(std::move(w));
  }
  return out;
}

// INT8 as QDQ: int8 weights (per output channel) behind DequantizeLinear, optionally Q/DQ pairs
// on the conv inputs. Checked by ONNX; each dequantized weight is within half a step of the
// float one; OpenCV runs the activation Q/DQ pairs and tracks LibTorch to int8 precision.
TEST(OnnxInt8, QdqExportIsCheckedExactPerChannelAndRuns) {
  auto model = random_model("mobilenet-aspp-se-unet-lite");
  GraphInputShape shape;
  shape.height = shape.width = 64;
  const Graph graph = model_graph(*model, shape);
  const Graph qdq = quantize_qdq(graph);
  auto ops = graph.op_counts(), qops = qdq.op_counts();
  EXPECT_EQ(qops["DequantizeLinear"], ops["Conv"] + ops["ConvTranspose"]);
  EXPECT_EQ(qops.count("QuantizeLinear"), 0u);
  for (const auto& t : graph.initializers) {
    const GraphTensor* q = qdq.initializer(t.name + "_quantized");
    if (!q) continue;
    ASSERT_EQ(q->type, TensorType::I8);
    const GraphTensor* s = qdq.initializer(t.name + "_scale");
    ASSERT_NE(s, nullptr);
    const int64_t per = t.numel() / t.shape[0];
    for (int64_t e = 0; e < t.numel(); e += 7) {  // Conv: axis 0 = output channels
      const bool transposed = s->shape[0] != t.shape[0];
      if (transposed) break;  // (ConvTranspose weights use axis 1; checked by the runs below)
      const float scale = s->f32[static_cast<size_t>(e / per)];
      EXPECT_LE(std::abs(q->i8[static_cast<size_t>(e)] * scale - t.f32[static_cast<size_t>(e)]), scale / 2 + 1e-7) << t.name;
    }
  }
  test::TempDir dir;
  const std::string path = dir.file("int8.onnx");
  write_onnx(qdq, path, OnnxOptions{});
  EXPECT_NO_THROW(onnx::checker::check_model(path));
  EXPECT_ERROR_CONTAINS(write_onnx(qdq, dir.file("old.onnx"), OnnxOptions{11}), "too old for operator DequantizeLinear");
  // OpenCV runs the weights folded back with ONNX's semantics.
  torch::manual_seed(9);
  const auto x = torch::randn({1, 1, 64, 64});
  const std::string folded = dir.file("folded.onnx");
  write_onnx(fold_weight_dequantize(qdq), folded, OnnxOptions{});
  const double rel = compare_with_opencv(model, folded, x);
  std::printf("[ onnx     ] int8 weights (QDQ) in OpenCV vs LibTorch fp32: max |Δlogit| / range = %.3g\n", rel);
  EXPECT_LE(rel, 0.1);  // measured 0.047 (random weights; the runtime's int8 shows 4-9%)

  // With calibration every conv reads its input through a Q/DQ pair with scale absmax/127.
  // (OpenCV 4.6 cannot run float convs after Q/DQ pairs; the checker validates the file.)
  std::vector<runtime::PlainTensor> calib;
  for (int i = 0; i < 4; ++i) {
    const auto c = torch::randn({1, 1, 64, 64});
    calib.push_back(runtime::PlainTensor::floats({1, 1, 64, 64}, {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()}));
  }
  const auto absmax = runtime::calibrate_activations(graph, calib);
  const Graph with_activations = quantize_qdq(graph, absmax);
  write_onnx(with_activations, dir.file("int8_act.onnx"), OnnxOptions{});
  EXPECT_NO_THROW(onnx::checker::check_model(dir.file("int8_act.onnx")));
  int pairs = 0;
  for (const auto& n : with_activations.nodes) {
    if (n.op != "QuantizeLinear") continue;
    ++pairs;
    const float scale = with_activations.initializer(n.inputs[1])->f32[0];
    const float a = absmax.at(n.inputs[0]);
    EXPECT_FLOAT_EQ(scale, a > 0 ? a / 127.f : 1.f) << n.name;  // (an all-zero activation: any scale)
  }
  for (const auto& n : with_activations.nodes)  // a conv reads a float value only if it was not calibrated
    if ((n.op == "Conv" || n.op == "ConvTranspose") && n.inputs[0].find("_int8_dequantized") == std::string::npos)
      EXPECT_EQ(absmax.count(n.inputs[0]), 0u) << n.name << " reads " << n.inputs[0];
  EXPECT_GT(pairs, 50);
}

// Dynamic batch and size: one file, run by OpenCV at two batch sizes and two image sizes.
TEST(OnnxExport, DynamicAxesRunInOpenCvAtTwoSizes) {
  for (const std::string name : {"unet-32", "mobilenet-aspp-se-unet-lite"}) {
    auto model = random_model(name);
    GraphInputShape shape;
    shape.dynamic_batch = shape.dynamic_size = true;
    const Graph graph = model_graph(*model, shape);
    EXPECT_EQ(graph.inputs[0].dim_names, (std::vector<std::string>{"batch", "", "height", "width"}));
    EXPECT_EQ(graph.outputs[0].dim_names, (std::vector<std::string>{"batch", "", "height", "width"}));
    test::TempDir dir;
    const std::string path = dir.file("dynamic.onnx");
    write_onnx(graph, path, OnnxOptions{});
    torch::manual_seed(5);
    for (const auto& size : {std::array<int64_t, 3>{1, 64, 64}, std::array<int64_t, 3>{2, 96, 64}}) {
      const double rel = compare_with_opencv(model, path, torch::randn({size[0], 1, size[1], size[2]}));
      std::printf("[ onnx     ] %s dynamic, %lldx1x%lldx%lld: max |Δlogit| / range = %.3g\n", name.c_str(),
                  static_cast<long long>(size[0]), static_cast<long long>(size[1]), static_cast<long long>(size[2]), rel);
      EXPECT_LE(rel, kRelativeTolerance) << name;
    }
  }
}

// Linear attention returns to [N, C, H, W] through Reshape(·, Shape(x)); OpenCV 4.6 cannot
// import Shape of a dynamic tensor (docs/onnx.md), so the dynamic efficient-unet is checked by
// ONNX's checker and strict shape inference only (write_onnx runs both).
TEST(OnnxExport, DynamicAttentionModelPassesTheChecker) {
  auto model = random_model("efficient-unet");
  GraphInputShape shape;
  shape.dynamic_batch = shape.dynamic_size = true;
  test::TempDir dir;
  const std::string path = dir.file("dynamic.onnx");
  ASSERT_NO_THROW(write_onnx(model_graph(*model, shape), path, OnnxOptions{}));
  EXPECT_NO_THROW(onnx::checker::check_model(path));
  const onnx::ModelProto proto = read_model_proto(path);
  const auto& dims = proto.graph().input(0).type().tensor_type().shape().dim();
  EXPECT_EQ(dims.Get(0).dim_param(), "batch");
  EXPECT_EQ(dims.Get(2).dim_param(), "height");
  EXPECT_EQ(dims.Get(3).dim_param(), "width");
}

TEST(OnnxExport, OpsetsOutsideTheSupportedRangeAreRefused) {
  auto model = random_model("unet-32");
  GraphInputShape shape;
  shape.height = shape.width = 32;
  const Graph graph = model_graph(*model, shape);
  for (int opset = kOnnxMinOpset; opset <= kOnnxMaxOpset; ++opset) {
    OnnxOptions options;
    options.opset = opset;
    EXPECT_NO_THROW(onnx_model_bytes(graph, options)) << "opset " << opset;
  }
  EXPECT_ERROR_CONTAINS(check_opset(graph, 10), "opset 10 is too old (supported: 11–17)");
  EXPECT_ERROR_CONTAINS(check_opset(graph, 5), "opset 5 is too old for operator Relu (node 'enc1.0.2'): it needs opset >= 6");
  EXPECT_ERROR_CONTAINS(check_opset(graph, 18), "opset 18 is newer than this ONNX library knows");
  Graph unknown = graph;
  unknown.nodes[0].op = "FancyConv";
  EXPECT_ERROR_CONTAINS(check_opset(unknown, 13), "uses operator FancyConv that the ONNX writer does not know");
}

TEST(OnnxExport, CheckerRejectionIsReported) {
  auto model = random_model("unet-32");
  GraphInputShape shape;
  shape.height = shape.width = 32;
  const Graph good = model_graph(*model, shape);
  auto node_named = [](Graph& graph, const std::string& name) -> GraphNode& {
    for (auto& n : graph.nodes)
      if (n.name == name) return n;
    throw std::runtime_error("no node " + name);
  };
  // The checker: a MaxPool without its required kernel_shape.
  Graph missing_attribute = good;
  node_named(missing_attribute, "enc2/pool").attributes.clear();
  EXPECT_ERROR_CONTAINS(onnx_model_bytes(missing_attribute, OnnxOptions{}), "ONNX checker rejected graph 'unet-32'");
  EXPECT_ERROR_CONTAINS(onnx_model_bytes(missing_attribute, OnnxOptions{}), "kernel_shape");
  // Strict shape inference: a skip connection concatenated at the wrong resolution.
  Graph wrong_skip = good;
  node_named(wrong_skip, "dec4/concat").inputs[1] = "enc1.1.2";
  EXPECT_ERROR_CONTAINS(onnx_model_bytes(wrong_skip, OnnxOptions{}), "ONNX checker rejected graph 'unet-32'");
  test::TempDir dir;
  EXPECT_ERROR_CONTAINS(write_onnx(wrong_skip, dir.file("bad.onnx"), OnnxOptions{}), "ONNX checker rejected");
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad.onnx")));
}

TEST(OnnxGraph, ValidateNamesTheOffendingNode) {
  Graph graph;
  graph.name = "g";
  graph.inputs.push_back({"image", {1, 1, 4, 4}, {"", "", "", ""}});
  graph.nodes.push_back({"Relu", "a", {"image"}, {"a"}, {}});
  graph.nodes.push_back({"Relu", "b", {"missing"}, {"b"}, {}});
  graph.outputs.push_back({"b", {1, 1, 4, 4}, {"", "", "", ""}});
  EXPECT_ERROR_CONTAINS(graph.validate(), "Relu node 'b' reads 'missing' before anything defines it");
  graph.nodes[1].inputs = {"a"};
  EXPECT_NO_THROW(graph.validate());
  graph.nodes[1].outputs = {"a"};
  EXPECT_ERROR_CONTAINS(graph.validate(), "value 'a' defined twice (Relu node 'b')");
  graph.nodes[1].outputs = {"b"};
  graph.initializers.push_back({"w", TensorType::F32, {2, 3}, {1, 2, 3}, {}});
  EXPECT_ERROR_CONTAINS(graph.validate(), "initializer 'w' holds 3 values for 6 elements");
}

TEST(OnnxExport, SizeNotAMultipleOfTheDivisorIsRefused) {
  auto model = random_model("unet-32");
  GraphInputShape shape;
  shape.height = 100;
  EXPECT_ERROR_CONTAINS(model_graph(*model, shape), "input size 100x256 (HxW) is not a positive multiple of 32");
}

// --- the `leanseg export` command ----------------------------------------------------------

TEST(OnnxCli, ExportsAModelFileWithItsInputSizeAndMetadata) {
  test::TempDir dir;
  Preprocessing pre;
  pre.input_height = pre.input_width = 64;
  save_model(dir.file("m.safetensors"), random_model("efficient-unet"), pre);
  const CliRun r = run_cli("export --model " + dir.file("m.safetensors") + " --format onnx --out " + dir.file("m.onnx"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("input  image [1, 1, 64, 64] float"), std::string::npos) << r.out;
  const onnx::ModelProto proto = read_model_proto(dir.file("m.onnx"));
  EXPECT_EQ(proto.graph().input(0).type().tensor_type().shape().dim(3).dim_value(), 64);
  ASSERT_EQ(proto.metadata_props_size(), 1);
  const auto meta = nlohmann::json::parse(proto.metadata_props(0).value());
  EXPECT_EQ(meta["config"]["arch"], "efficient-unet");
  EXPECT_EQ(meta["preprocessing"]["input_height"], 64);
}

TEST(OnnxCli, DynamicExportByName) {
  test::TempDir dir;
  const CliRun r = run_cli("export --model unet-32 --format onnx --opset 11 --dynamic-size --dynamic-batch --out " +
                           dir.file("u.onnx"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("[batch, 1, height, width]"), std::string::npos) << r.out;
  EXPECT_EQ(read_model_proto(dir.file("u.onnx")).opset_import(0).version(), 11);
}

TEST(OnnxCli, BadRequestsFailClearly) {
  test::TempDir dir;
  const std::string out = " --out " + dir.file("x.onnx");
  CliRun r = run_cli("export --model unet-32 --format xyz" + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("unknown format 'xyz' (onnx, runtime)"), std::string::npos) << r.out;
  r = run_cli("export --model unet-32 --format onnx --opset 9" + out);  // usage errors (exit 2)
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--opset 9: outside the supported range 11–17"), std::string::npos) << r.out;
  r = run_cli("export --model unet-32 --format onnx --opset 19" + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--opset 19: outside the supported range 11–17"), std::string::npos) << r.out;
  {
    std::ofstream garbage(dir.file("garbage.safetensors"), std::ios::binary);
    garbage << "definitely not a model";
  }
  r = run_cli("export --model " + dir.file("garbage.safetensors") + " --format onnx" + out);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find(dir.file("garbage.safetensors")), std::string::npos) << r.out;
  r = run_cli("export --model " + dir.file("missing.safetensors") + " --format onnx" + out);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("neither a model file nor a model name"), std::string::npos) << r.out;
  r = run_cli("export --model unet-32 --format onnx --input-size 100" + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--input-size 100 must be a positive multiple of 32"), std::string::npos) << r.out;
  r = run_cli("export --model unet-32 --format onnx --calibrate random" + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--calibrate with --format onnx needs --int8"), std::string::npos) << r.out;
  r = run_cli("export --model unet-32 --format onnx --int8 --opset 12" + out);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("opset 12 is too old for operator DequantizeLinear"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.onnx")));
}

// A model stored int8 (leanseg compress --quant int8) exports as QDQ without being told.
TEST(OnnxCli, Int8ModelFileExportsAsQdq) {
  test::TempDir dir;
  Preprocessing pre;
  pre.input_height = pre.input_width = 64;
  save_model(dir.file("m.safetensors"), random_model("efficient-unet"), pre);
  CliRun r = run_cli("compress --model " + dir.file("m.safetensors") + " --out " + dir.file("q.safetensors") +
                     " --quant int8 --per-channel");
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_cli("export --model " + dir.file("q.safetensors") + " --format onnx --out " + dir.file("q.onnx"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("int8 QDQ:"), std::string::npos) << r.out;
  const onnx::ModelProto proto = read_model_proto(dir.file("q.onnx"));
  int int8_tensors = 0;
  for (const auto& t : proto.graph().initializer()) int8_tensors += t.data_type() == onnx::TensorProto::INT8;
  EXPECT_GT(int8_tensors, 20);
}

// examples/onnx_opencv (OpenCV only) segments an image with an exported model and writes the
// mask next to it; the mask agrees with `leanseg predict` on the same model file.
TEST(OnnxExample, SegmentsAnImageLikeLeansegPredict) {
  test::TempDir dir;
  Preprocessing pre;
  pre.input_height = pre.input_width = 64;
  auto model = random_model("mobilenet-aspp-se-unet-lite");
  save_model(dir.file("m.safetensors"), model, pre);
  CliRun r = run_cli("export --model " + dir.file("m.safetensors") + " --format onnx --out " + dir.file("m.onnx"));
  ASSERT_EQ(r.code, 0) << r.out;
  cv::Mat image(80, 100, CV_8UC1);
  cv::randu(image, 0, 255);
  cv::circle(image, {50, 40}, 25, cv::Scalar(230), cv::FILLED);
  cv::imwrite(dir.file("scan.png"), image);
  const CliRun ex = test::run_command(std::string(LEANSEG_EXAMPLE_ONNX_PATH) + " " + dir.file("m.onnx") + " " +
                                      dir.file("scan.png") + " --size 64");
  ASSERT_EQ(ex.code, 0) << ex.out;
  EXPECT_NE(ex.out.find("wrote " + dir.file("scan_mask.png") + " (100x80"), std::string::npos) << ex.out;
  r = run_cli("predict --model " + dir.file("m.safetensors") + " " + dir.file("scan.png") + " --out " + dir.file("pred"));
  ASSERT_EQ(r.code, 0) << r.out;
  const cv::Mat ours = cv::imread(dir.file("scan_mask.png"), cv::IMREAD_GRAYSCALE);
  const cv::Mat theirs = cv::imread(dir.file("pred/scan_mask.png"), cv::IMREAD_GRAYSCALE);
  ASSERT_EQ(ours.size(), theirs.size());
  const double agree = 1.0 - cv::countNonZero(ours != theirs) / static_cast<double>(ours.total());
  std::printf("[ onnx     ] example vs leanseg predict: masks agree on %.2f%% of pixels\n", 100 * agree);
  EXPECT_GE(agree, 0.98);
}

}  // namespace
}  // namespace leanseg
