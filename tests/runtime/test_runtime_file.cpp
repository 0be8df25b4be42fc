// The `.lsr` runtime model file: exact round trips of exported zoo models, refusal of malformed
// files with messages that name the file and the problem, and `leanseg export --format runtime`.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "leanseg/error.h"
#include "leanseg/fs.h"
#include "leanseg/graph_export.h"
#include "leanseg/model_file.h"
#include "leanseg/runtime.h"
#include "leanseg/runtime_file.h"
#include "leanseg/safetensors.h"
#include "model_test_util.h"
#include "runtime/reference.h"
#include "test_util.h"

namespace leanseg {
namespace {

using Attr = GraphAttribute;
using json = nlohmann::json;

// --- comparing models --------------------------------------------------------------------------

void expect_same_values(const std::vector<GraphValue>& a, const std::vector<GraphValue>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].shape, b[i].shape);
    EXPECT_EQ(a[i].dim_names, b[i].dim_names);
  }
}

void expect_same_graph(const Graph& a, const Graph& b) {
  EXPECT_EQ(a.name, b.name);
  expect_same_values(a.inputs, b.inputs);
  expect_same_values(a.outputs, b.outputs);
  ASSERT_EQ(a.nodes.size(), b.nodes.size());
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    const GraphNode &x = a.nodes[i], &y = b.nodes[i];
    EXPECT_EQ(x.op, y.op);
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.inputs, y.inputs);
    EXPECT_EQ(x.outputs, y.outputs);
    ASSERT_EQ(x.attributes.size(), y.attributes.size()) << x.name;
    for (size_t j = 0; j < x.attributes.size(); ++j) {
      const Attr &p = x.attributes[j], &q = y.attributes[j];
      EXPECT_EQ(p.name, q.name);
      EXPECT_EQ(p.kind, q.kind) << x.name << " " << p.name;
      EXPECT_EQ(p.i, q.i);
      EXPECT_EQ(std::memcmp(&p.f, &q.f, sizeof(float)), 0) << x.name << " " << p.name << ": " << p.f << " vs " << q.f;
      EXPECT_EQ(p.ints, q.ints);
    }
  }
  ASSERT_EQ(a.initializers.size(), b.initializers.size());
  for (size_t i = 0; i < a.initializers.size(); ++i) {
    const GraphTensor &x = a.initializers[i], &y = b.initializers[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.type, y.type) << x.name;
    EXPECT_EQ(x.shape, y.shape) << x.name;
    EXPECT_EQ(x.i64, y.i64) << x.name;
    ASSERT_EQ(x.f32.size(), y.f32.size()) << x.name;
    EXPECT_EQ(std::memcmp(x.f32.data(), y.f32.data(), x.f32.size() * sizeof(float)), 0) << x.name;
  }
}

// --- a small hand-built model ------------------------------------------------------------------

// Conv (bias, pads) → HardSigmoid → Mul by a scalar → Reshape by an I64 initializer → 1×1 Conv.
RuntimeModel tiny_model() {
  RuntimeModel m;
  Graph& g = m.graph;
  g.name = "tiny";
  g.inputs.push_back({"image", {1, 1, 32, 32}, {"", "", "", ""}});
  g.outputs.push_back({"logits", {1, 1, 32, 32}, {"", "", "", ""}});
  std::vector<float> w(18);
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.1f * static_cast<float>(i) - 0.7f;
  g.initializers.push_back({"conv.weight", TensorType::F32, {2, 1, 3, 3}, w, {}});
  g.initializers.push_back({"conv.bias", TensorType::F32, {2}, {0.5f, -0.25f}, {}});
  g.initializers.push_back({"six", TensorType::F32, {}, {6.0f}, {}});
  g.initializers.push_back({"shape", TensorType::I64, {4}, {}, {0, 2, 32, -1}});
  g.initializers.push_back({"logits.weight", TensorType::F32, {1, 2, 1, 1}, {1.0f / 3, -2.0f}, {}});
  g.nodes.push_back({"Conv", "conv", {"image", "conv.weight", "conv.bias"}, {"conv"},
                     {Attr::of("kernel_shape", std::vector<int64_t>{3, 3}), Attr::of("pads", std::vector<int64_t>{1, 1, 1, 1}),
                      Attr::of("group", int64_t{1})}});
  g.nodes.push_back({"HardSigmoid", "act", {"conv"}, {"act"}, {Attr::of("alpha", 1.0f / 6), Attr::of("beta", 0.0f)}});
  g.nodes.push_back({"Mul", "scaled", {"act", "six"}, {"scaled"}, {}});
  g.nodes.push_back({"Reshape", "reshaped", {"scaled", "shape"}, {"reshaped"}, {}});
  g.nodes.push_back({"Conv", "logits", {"reshaped", "logits.weight"}, {"logits"}, {}});
  m.preprocessing = {{"input_height", 32}, {"mean", 0.5}, {"channels", {"gray"}}};
  m.config = {{"arch", "tiny"}, {"in_channels", 1}};
  m.size_divisor = 32;
  m.activation_absmax = {{"image", 1.0f}, {"conv", 1.0f / 3}, {"scaled", 6.0f}};
  return m;
}

// A file's pieces, to be edited and reassembled into a malformed file.
struct Parts {
  json meta;
  std::vector<TensorToWrite> tensors;
  bool with_metadata = true;
};

// The tensors point into `m`, which must outlive the Parts.
Parts parts_of(const RuntimeModel& m) {
  const auto file = SafeTensorsFile::parse(serialize_runtime_model(m), "tiny.lsr");
  Parts p;
  p.meta = json::parse(file.metadata().at(kRuntimeMetadataKey));
  // Hand-edited files carry no checksums (like files from before them), so that each edit meets
  // the structural check it is meant for; the checksums have tests of their own.
  p.meta.erase("checksums");
  for (const auto& t : m.graph.initializers) {
    const bool f32 = t.type == TensorType::F32;
    p.tensors.push_back({t.name, f32 ? DType::F32 : DType::I64, t.shape,
                         f32 ? static_cast<const void*>(t.f32.data()) : static_cast<const void*>(t.i64.data()),
                         f32 ? t.f32.size() * 4 : t.i64.size() * 8});
  }
  return p;
}

std::vector<unsigned char> assemble(const Parts& p) {
  std::map<std::string, std::string> metadata;
  if (p.with_metadata) metadata[kRuntimeMetadataKey] = p.meta.dump();
  return serialize_safetensors(p.tensors, metadata);
}

void expect_refused(const std::vector<unsigned char>& bytes, const std::string& needle) {
  try {
    parse_runtime_model(bytes, "bad.lsr");
    ADD_FAILURE() << "accepted a file that should fail with: " << needle;
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'bad.lsr'"), std::string::npos) << "the message does not name the file: " << what;
    EXPECT_NE(what.find(needle), std::string::npos) << "message: " << what;
  }
}

template <class Edit>
void expect_refused_after(const Edit& edit, const std::string& needle) {
  const RuntimeModel m = tiny_model();
  Parts p = parts_of(m);
  edit(p);
  expect_refused(assemble(p), needle);
}

// --- round trips -------------------------------------------------------------------------------

TEST(RuntimeFile, TinyModelRoundTripsBitExactly) {
  const RuntimeModel m = tiny_model();
  const auto bytes = serialize_runtime_model(m);
  const RuntimeModel back = parse_runtime_model(bytes, "tiny.lsr");
  expect_same_graph(m.graph, back.graph);
  EXPECT_EQ(back.preprocessing, m.preprocessing);
  EXPECT_EQ(back.config, m.config);
  EXPECT_EQ(back.size_divisor, 32);
  EXPECT_EQ(back.activation_absmax, m.activation_absmax);  // exact float equality
  EXPECT_EQ(serialize_runtime_model(back), bytes);
  EXPECT_EQ(back.graph.initializer("shape")->type, TensorType::I64);
  EXPECT_TRUE(back.graph.initializer("six")->shape.empty());  // a scalar stays a scalar
}

class RuntimeFileZoo : public ::testing::TestWithParam<std::string> {};

TEST_P(RuntimeFileZoo, ExportedGraphRoundTripsBitExactlyThroughAFile) {
  auto model = test::random_model(GetParam());
  GraphInputShape shape;
  shape.height = shape.width = 64;
  RuntimeModel m;
  m.graph = model_graph(*model, shape);
  m.preprocessing = Preprocessing{}.to_json();
  m.config = model->config().to_json();
  m.size_divisor = model->size_divisor();
  // Calibration values that are not short decimals, to catch float → JSON → float rounding.
  for (size_t i = 0; i < m.graph.nodes.size(); i += 7)
    m.activation_absmax[m.graph.nodes[i].outputs[0]] = std::nextafter(static_cast<float>(i) / 3.0f + 0.1f, 100.0f);

  test::TempDir dir;
  const std::string path = dir.file("m.lsr");
  write_runtime_model(m, path);
  const RuntimeModel back = read_runtime_model(path);
  expect_same_graph(m.graph, back.graph);
  EXPECT_EQ(back.preprocessing, m.preprocessing);
  EXPECT_EQ(back.config, m.config);
  EXPECT_EQ(back.size_divisor, m.size_divisor);
  EXPECT_EQ(back.activation_absmax, m.activation_absmax);
  EXPECT_EQ(serialize_runtime_model(back), read_file_bytes(path));
  EXPECT_EQ(back.graph.parameter_count(), m.graph.parameter_count());
}

INSTANTIATE_TEST_SUITE_P(Runtime, RuntimeFileZoo, ::testing::Values("unet-32", "efficient-unet", "mobilenet-aspp-se-unet-lite"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

// --- malformed files ---------------------------------------------------------------------------

TEST(RuntimeFile, TruncatedAndCorruptedFilesAreRefused) {
  const auto good = serialize_runtime_model(tiny_model());
  auto cut = good;
  cut.resize(good.size() - 4);
  expect_refused(cut, "truncated file?");
  cut.resize(200);  // inside the header
  expect_refused(cut, "truncated or not a safetensors file");
  expect_refused({'l', 's', 'r'}, "not a safetensors file");
  auto corrupt = good;
  corrupt[8] = '#';  // the header's opening brace
  expect_refused(corrupt, "header is not valid JSON");
}

TEST(RuntimeFile, MetadataProblemsAreRefused) {
  expect_refused_after([](Parts& p) { p.with_metadata = false; },
                       "no 'leanseg.runtime' metadata entry: not a leanseg runtime file");
  {
    const RuntimeModel m = tiny_model();
    Parts p = parts_of(m);
    auto bytes = serialize_safetensors(p.tensors, {{kRuntimeMetadataKey, "{\"format\": "}});
    expect_refused(bytes, "metadata 'leanseg.runtime' is not valid JSON");
  }
  expect_refused_after([](Parts& p) { p.meta["format"] = "leanseg-model"; },
                       "format is 'leanseg-model', expected 'leanseg-runtime'");
  expect_refused_after([](Parts& p) { p.meta.erase("format"); }, "missing key 'format'");
  expect_refused_after([](Parts& p) { p.meta["version"] = 7; },
                       "'bad.lsr' was written by a newer leanseg (runtime format version 7; this build reads up to 2)");
  expect_refused_after([](Parts& p) { p.meta["version"] = 0; }, "runtime format version 0 is invalid");
  expect_refused_after([](Parts& p) { p.meta["version"] = "1"; }, "'version' should be an integer");
  expect_refused_after([](Parts& p) { p.meta["size_divisor"] = 0; }, "size_divisor 0 is not positive");
  expect_refused_after([](Parts& p) { p.meta["size_divisor"] = 64; },
                       "input size 32x32 (HxW) is not a multiple of the size divisor 64");
  expect_refused_after([](Parts& p) { p.meta["preprocessing"] = "resize"; }, "'preprocessing' should be an object");
}

TEST(RuntimeFile, MalformedGraphJsonIsRefused) {
  expect_refused_after([](Parts& p) { p.meta["graph"]["nodes"][1].erase("op"); },
                       "graph node 1: missing key 'op'");
  expect_refused_after([](Parts& p) { p.meta["graph"]["nodes"][2]["inputs"] = "act"; },
                       "graph node 2 (Mul 'scaled'): 'inputs' should be an array");
  expect_refused_after([](Parts& p) { p.meta["graph"]["nodes"][0]["attributes"][0]["kind"] = "string"; },
                       "attribute 'kernel_shape': unknown attribute kind 'string' (int, float or ints)");
  expect_refused_after([](Parts& p) { p.meta["graph"]["nodes"][0]["attributes"][2]["value"] = 1.5; },
                       "attribute 'group': value should be an integer");
  expect_refused_after([](Parts& p) { p.meta["graph"]["nodes"][1]["attributes"][0]["value"] = 1e300; },
                       "attribute 'alpha': value 1e+300 is not a finite float");
  expect_refused_after([](Parts& p) { p.meta["graph"]["inputs"][0]["dim_names"] = {""}; },
                       "graph input 0 'image': 4 axes but 1 axis names");
  expect_refused_after([](Parts& p) { p.meta["graph"]["inputs"][0]["shape"] = {1, 1, -1, 32}; },
                       "should have a fixed shape [1, C, H, W], got [1, 1, -1, 32]");
}

TEST(RuntimeFile, TensorsThatDisagreeWithTheGraphAreRefused) {
  expect_refused_after([](Parts& p) { p.tensors.erase(p.tensors.begin()); },
                       "Conv node 'conv' reads 'conv.weight', which is no graph input, node output or tensor of the "
                       "file (missing initializer)");
  static const float extra[2] = {1, 2};
  expect_refused_after([](Parts& p) { p.tensors.push_back({"stray", DType::F32, {2}, extra, sizeof extra}); },
                       "tensor 'stray' is not used by the graph");
  static const int32_t shape32[4] = {0, 2, 32, -1};
  expect_refused_after(
      [](Parts& p) {
        for (auto& t : p.tensors)
          if (t.name == "shape") t = {"shape", DType::I32, {4}, shape32, sizeof shape32};
      },
      "tensor 'shape' has dtype I32; runtime files hold F32 and I64 tensors only");
  static const float bias3[3] = {1, 2, 3};
  expect_refused_after(
      [](Parts& p) {
        for (auto& t : p.tensors)
          if (t.name == "conv.bias") t = {"conv.bias", DType::F32, {3}, bias3, sizeof bias3};
      },
      "Conv node 'conv': bias 'conv.bias' should be F32 of shape [2], got [3]");
  expect_refused_after(
      [](Parts& p) {
        for (auto& t : p.tensors)
          if (t.name == "conv.weight") t.shape = {2, 9};
      },
      "weight 'conv.weight' should be a 4-D F32 tensor, got shape [2, 9]");
}

TEST(RuntimeFile, UndefinedValuesAndBadCalibrationAreRefused) {
  // The HardSigmoid moved after the Mul that reads its output.
  expect_refused_after([](Parts& p) { std::swap(p.meta["graph"]["nodes"][1], p.meta["graph"]["nodes"][2]); },
                       "Mul node 'scaled' reads 'act' before anything defines it");
  expect_refused_after([](Parts& p) { p.meta["graph"]["outputs"][0]["name"] = "nowhere"; },
                       "output 'nowhere' is never produced");
  // JSON has no NaN: nlohmann writes null for it.
  expect_refused_after([](Parts& p) { p.meta["activation_absmax"]["conv"] = nullptr; },
                       "activation_absmax of 'conv' is null, not a finite non-negative number");
  expect_refused_after([](Parts& p) { p.meta["activation_absmax"]["conv"] = -1.0; },
                       "activation_absmax of 'conv' is -1.0, not a finite non-negative number");
  expect_refused_after([](Parts& p) { p.meta["activation_absmax"]["conv"] = 1e39; },
                       "activation_absmax of 'conv' is 1e+39, not a finite non-negative number");
  expect_refused_after([](Parts& p) { p.meta["activation_absmax"]["ghost"] = 1.0; },
                       "activation_absmax names 'ghost', which is no graph input or node output");
}

TEST(RuntimeFile, WriterRefusesModelsTheReaderWouldRefuse) {
  test::TempDir dir;
  RuntimeModel m = tiny_model();
  m.activation_absmax["conv"] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_ERROR_CONTAINS(write_runtime_model(m, dir.file("nan.lsr")),
                        "runtime model 'tiny': activation_absmax of 'conv' is nan");
  EXPECT_FALSE(std::filesystem::exists(dir.file("nan.lsr")));
  m = tiny_model();
  m.graph.nodes[1].attributes[0].f = std::numeric_limits<float>::infinity();
  EXPECT_ERROR_CONTAINS(serialize_runtime_model(m), "graph 'tiny': HardSigmoid node 'act': float attribute 'alpha' is not finite");
  m = tiny_model();
  m.size_divisor = 0;
  EXPECT_ERROR_CONTAINS(serialize_runtime_model(m), "size_divisor 0 is not positive");
  EXPECT_ERROR_CONTAINS(read_runtime_model(dir.file("missing.lsr")), dir.file("missing.lsr"));
}

TEST(RuntimeFile, ErrorsFromAFileNameThePath) {
  test::TempDir dir;
  const std::string path = dir.file("model.lsr");
  auto bytes = serialize_runtime_model(tiny_model());
  bytes.resize(bytes.size() / 2);
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  EXPECT_ERROR_CONTAINS(read_runtime_model(path), "'" + path + "'");
}

// --- hostile graphs (issue 17) ---------------------------------------------------------------------
// Files the reader used to accept and the engine then crashed on (a division by a zero stride,
// an index by axis 17, an input of 2^20 x 2^20 or one whose size wrapped through a cast to int).
// The reader's one check of the engine's limits (check_runtime_graph) refuses them.

// The reader's message for `bytes`, or "accepted".
std::string refusal(const std::vector<unsigned char>& bytes) {
  try {
    parse_runtime_model(bytes, "bad.lsr");
  } catch (const Error& e) {
    return e.what();
  }
  return "accepted";
}

template <class Edit>
std::string refusal_after(const RuntimeModel& m, const Edit& edit) {
  Parts p = parts_of(m);
  edit(p);
  return refusal(assemble(p));
}

json int_attribute(const std::string& name, json value) { return {{"name", name}, {"kind", "int"}, {"value", value}}; }
json ints_attribute(const std::string& name, json value) { return {{"name", name}, {"kind", "ints"}, {"value", value}}; }

// Sets attribute `name` (replacing one of that name) of node 0, tiny_model's 3x3 Conv.
void set_conv_attribute(Parts& p, const json& attribute) {
  json& attributes = p.meta["graph"]["nodes"][0]["attributes"];
  for (auto& a : attributes)
    if (a["name"] == attribute["name"]) return void(a = attribute);
  attributes.push_back(attribute);
}

// image [1, 1, 32, 32] and a 1x1 conv of it, concatenated on `axis`, then a 1x1 conv to logits.
RuntimeModel concat_model(int64_t axis) {
  RuntimeModel m;
  Graph& g = m.graph;
  g.name = "cat";
  g.inputs.push_back({"image", {1, 1, 32, 32}, {"", "", "", ""}});
  g.outputs.push_back({"logits", {1, 1, 32, 32}, {"", "", "", ""}});
  g.initializers.push_back({"a.weight", TensorType::F32, {1, 1, 1, 1}, {2.0f}, {}});
  g.initializers.push_back({"logits.weight", TensorType::F32, {1, 2, 1, 1}, {1.0f, 0.5f}, {}});
  g.nodes.push_back({"Conv", "a", {"image", "a.weight"}, {"a"}, {}});
  g.nodes.push_back({"Concat", "cat", {"image", "a"}, {"cat"}, {Attr::of("axis", axis)}});
  g.nodes.push_back({"Conv", "logits", {"cat", "logits.weight"}, {"logits"}, {}});
  m.preprocessing = json::object();
  m.config = json::object();
  return m;
}

TEST(RuntimeFileHostile, ConvStridesZeroOrNegativeAreRefused) {
  const RuntimeModel m = tiny_model();
  EXPECT_EQ(refusal_after(m, [](Parts& p) { set_conv_attribute(p, ints_attribute("strides", {0, 1})); }),
            "'bad.lsr': Conv node 'conv': attribute 'strides' is [0, 1], each value must be in [1, 16384]");
  EXPECT_EQ(refusal_after(m, [](Parts& p) { set_conv_attribute(p, ints_attribute("strides", {1, -2})); }),
            "'bad.lsr': Conv node 'conv': attribute 'strides' is [1, -2], each value must be in [1, 16384]");
  // The engine read ints of an int attribute as an empty list, then indexed it.
  EXPECT_EQ(refusal_after(m, [](Parts& p) { set_conv_attribute(p, int_attribute("strides", 1)); }),
            "'bad.lsr': Conv node 'conv': attribute 'strides' should be ints, got int");
  EXPECT_EQ(refusal_after(m, [](Parts& p) { set_conv_attribute(p, ints_attribute("strides", {1, 1, 1})); }),
            "'bad.lsr': Conv node 'conv': attribute 'strides' is [1, 1, 1], should have 2 values");
}

TEST(RuntimeFileHostile, ConvDilationsKernelsPadsAndGroupsOutOfRangeAreRefused) {
  const RuntimeModel m = tiny_model();
  EXPECT_EQ(refusal_after(m, [](Parts& p) { set_conv_attribute(p, ints_attribute("dilations", {0, 0})); }),
            "'bad.lsr': Conv node 'conv': attribute 'dilations' is [0, 0], each value must be in [1, 16384]");
  EXPECT_EQ(refusal_after(m, [](Parts& p) { set_conv_attribute(p, ints_attribute("dilations", {1, 1000000})); }),
            "'bad.lsr': Conv node 'conv': attribute 'dilations' is [1, 1000000], each value must be in [1, 16384]");
  EXPECT_EQ(refusal_after(m, [](Parts& p) { set_conv_attribute(p, ints_attribute("pads", {1, -1, 1, 1})); }),
            "'bad.lsr': Conv node 'conv': attribute 'pads' is [1, -1, 1, 1], each value must be in [0, 16384]");
  EXPECT_EQ(refusal_after(m, [](Parts& p) { set_conv_attribute(p, ints_attribute("kernel_shape", {0, 3})); }),
            "'bad.lsr': Conv node 'conv': attribute 'kernel_shape' is [0, 3], each value must be in [1, 16384]");
  EXPECT_EQ(refusal_after(m, [](Parts& p) { set_conv_attribute(p, ints_attribute("kernel_shape", {5, 5})); }),
            "'bad.lsr': Conv node 'conv': kernel_shape [5, 5] disagrees with weight 'conv.weight' of shape [2, 1, 3, 3]");
  EXPECT_EQ(refusal_after(m, [](Parts& p) { set_conv_attribute(p, int_attribute("group", 0)); }),
            "'bad.lsr': Conv node 'conv': attribute 'group' is 0, must be in [1, 65536]");
  EXPECT_EQ(refusal_after(m, [](Parts& p) { set_conv_attribute(p, int_attribute("group", 3)); }),
            "'bad.lsr': Conv node 'conv': group 3 does not fit weight 'conv.weight' of shape [2, 1, 3, 3]");
}

TEST(RuntimeFileHostile, ConcatAxisOutOfRangeIsRefusedByReaderWriterAndEngine) {
  EXPECT_EQ(refusal_after(concat_model(1), [](Parts& p) { p.meta["graph"]["nodes"][1]["attributes"][0]["value"] = 17; }),
            "'bad.lsr': Concat node 'cat': attribute 'axis' is 17, must be in [-4, 3]");
  EXPECT_ERROR_CONTAINS(serialize_runtime_model(concat_model(-5)),
                        "runtime model 'cat': Concat node 'cat': attribute 'axis' is -5, must be in [-4, 3]");
  try {
    runtime::Engine::from_model(concat_model(17), {runtime::Precision::F32, 1});
    ADD_FAILURE() << "the engine planned a concat on axis 17";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "runtime model 'cat': Concat node 'cat': attribute 'axis' is 17, must be in [-4, 3]");
  }
  // The unedited model runs: [image, 2·image] · [1, 0.5] = 2·image.
  auto engine = runtime::Engine::from_model(concat_model(1), {runtime::Precision::F32, 1});
  const std::vector<float> ones(32 * 32, 1.0f);
  EXPECT_FLOAT_EQ(engine.run(ones.data())[0], 2.0f);
}

TEST(RuntimeFileHostile, HugeInputShapeIsRefused) {
  EXPECT_EQ(refusal_after(tiny_model(), [](Parts& p) { p.meta["graph"]["inputs"][0]["shape"] = {1, 1, 1 << 20, 1 << 20}; }),
            "'bad.lsr': input 'image': input size 1048576x1048576 (HxW) exceeds the limit of 16384 pixels per side");
  EXPECT_EQ(refusal_after(tiny_model(), [](Parts& p) { p.meta["graph"]["inputs"][0]["shape"] = {1, 100000, 32, 32}; }),
            "'bad.lsr': input 'image' has 100000 channels, more than the limit of 65536");
}

TEST(RuntimeFileHostile, IntegersThatWrapAreRefused) {
  // 2^32 + 64 became 64 through the engine's cast to int: a file planned at a size it does not say.
  EXPECT_EQ(refusal_after(tiny_model(),
                          [](Parts& p) { p.meta["graph"]["inputs"][0]["shape"] = {1, 1, 4294967360ll, 4294967360ll}; }),
            "'bad.lsr': input 'image': input size 4294967360x4294967360 (HxW) exceeds the limit of 16384 pixels per side");
  // Above 2^63 - 1 nlohmann's get<int64_t>() wraps to negative numbers.
  EXPECT_EQ(refusal_after(tiny_model(),
                          [](Parts& p) { p.meta["graph"]["inputs"][0]["shape"] = {1, 1, 32, 18446744073709551615ull}; }),
            "'bad.lsr': graph input 0 'image': 'shape' holds 18446744073709551615, which does not fit in a 64-bit integer");
  EXPECT_EQ(refusal_after(tiny_model(), [](Parts& p) { set_conv_attribute(p, int_attribute("group", 18446744073709551615ull)); }),
            "'bad.lsr': graph node 0 (Conv 'conv') attribute 'group': value 18446744073709551615 does not fit in a "
            "64-bit integer");
  EXPECT_EQ(refusal_after(tiny_model(), [](Parts& p) { p.meta["size_divisor"] = 4294967328ull; }),
            "'bad.lsr': size_divisor 4294967328 is implausibly large");
}

TEST(RuntimeFileHostile, PoolAndTransposedConvAttributesTheEngineIgnoresAreRefused) {
  Graph g;
  g.name = "pool";
  g.inputs.push_back({"image", {1, 1, 32, 32}, {"", "", "", ""}});
  g.nodes.push_back({"MaxPool", "pool", {"image"}, {"pool"}, {Attr::of("kernel_shape", std::vector<int64_t>{2, 2}),
                                                                Attr::of("dilations", std::vector<int64_t>{2, 2})}});
  EXPECT_ERROR_CONTAINS(check_runtime_graph(g, "'p.lsr'"),
                        "'p.lsr': MaxPool node 'pool': attribute 'dilations' is [2, 2]; the engine supports only 1 in "
                        "every position");
  g.nodes[0].attributes = {Attr::of("strides", std::vector<int64_t>{0, 2})};
  EXPECT_ERROR_CONTAINS(check_runtime_graph(g, "'p.lsr'"),
                        "'p.lsr': MaxPool node 'pool': attribute 'strides' is [0, 2], each value must be in [1, 16384]");
  g.nodes[0].attributes = {};
  EXPECT_ERROR_CONTAINS(check_runtime_graph(g, "'p.lsr'"), "'p.lsr': MaxPool node 'pool': needs a 'kernel_shape' attribute");
  g.nodes[0] = {"ConvTranspose", "up", {"image", "w"}, {"up"}, {Attr::of("output_padding", std::vector<int64_t>{1, 0})}};
  EXPECT_ERROR_CONTAINS(check_runtime_graph(g, "'p.lsr'"),
                        "'p.lsr': ConvTranspose node 'up': attribute 'output_padding' is [1, 0]; the engine supports "
                        "only 0 in every position");
}

// One input channel to 64 by a 1x1 conv, back to one: at `side`² the 64-channel map takes
// 256·side² bytes (64 GiB at 16384²).
RuntimeModel wide_model(int64_t side) {
  RuntimeModel m;
  Graph& g = m.graph;
  g.name = "wide";
  g.inputs.push_back({"image", {1, 1, side, side}, {"", "", "", ""}});
  g.outputs.push_back({"logits", {1, 1, side, side}, {"", "", "", ""}});
  g.initializers.push_back({"wide.weight", TensorType::F32, {64, 1, 1, 1}, std::vector<float>(64, 1.0f), {}});
  g.initializers.push_back({"logits.weight", TensorType::F32, {1, 64, 1, 1}, std::vector<float>(64, 1.0f / 64), {}});
  g.nodes.push_back({"Conv", "wide", {"image", "wide.weight"}, {"wide"}, {}});
  g.nodes.push_back({"Conv", "logits", {"wide", "logits.weight"}, {"logits"}, {}});
  m.preprocessing = json::object();
  m.config = json::object();
  return m;
}

TEST(RuntimeFileHostile, EngineRefusesToPlanMoreThanTheActivationMemoryLimit) {
  test::TempDir dir;
  write_runtime_model(wide_model(16384), dir.file("wide.lsr"));  // within the size limits: the file is valid
  // image 1 GiB + the 64-channel map 64 GiB (live together) + the output 1 GiB, before any allocation.
  const std::string message =
      "runtime model 'wide': input 16384x16384 (HxW) needs an estimated 66.0 GiB of activation memory, more than "
      "the 16 GiB limit";
  try {
    runtime::Engine::load(dir.file("wide.lsr"), {runtime::Precision::F32, 1, false});
    ADD_FAILURE() << "planned 66 GiB";
  } catch (const Error& e) {
    EXPECT_EQ(e.what(), message);
  }
  // A refused size leaves a running engine as it was.
  auto engine = runtime::Engine::from_model(wide_model(32), {runtime::Precision::F32, 1, false});
  try {
    engine.set_input_size(16384, 16384);
    ADD_FAILURE() << "planned 66 GiB";
  } catch (const Error& e) {
    EXPECT_EQ(e.what(), message);
  }
  EXPECT_ERROR_CONTAINS(engine.set_input_size(1 << 20, 1 << 20),
                        "runtime model 'wide': input size 1048576x1048576 (HxW) exceeds the limit of 16384 pixels per side");
  EXPECT_EQ(engine.input_height(), 32);
  const std::vector<float> ones(32 * 32, 1.0f);
  EXPECT_FLOAT_EQ(engine.run(ones.data())[32 * 32 - 1], 1.0f);
}

// Attributes within range can still make a value too large or empty: the planner bounds every
// activation it plans (a stride-16384 transposed conv of a 32x32 map would be 507905x507905).
TEST(RuntimeFileHostile, EngineRefusesPlannedShapesBeyondTheLimits) {
  auto model = [](const std::string& op, const std::string& attribute, std::vector<int64_t> values) {
    RuntimeModel m;
    Graph& g = m.graph;
    g.name = "geometry";
    g.inputs.push_back({"image", {1, 1, 32, 32}, {"", "", "", ""}});
    g.outputs.push_back({"logits", {1, 1, 32, 32}, {"", "", "", ""}});
    g.initializers.push_back({"logits.weight", TensorType::F32, {1, 1, 1, 1}, {1.0f}, {}});
    g.nodes.push_back({op, "logits", {"image", "logits.weight"}, {"logits"},
                       {Attr::of(attribute, std::move(values))}});
    m.preprocessing = json::object();
    m.config = json::object();
    return m;
  };
  EXPECT_ERROR_CONTAINS(runtime::Engine::from_model(model("ConvTranspose", "strides", {16384, 16384}), {runtime::Precision::F32, 1}),
                        "runtime model 'geometry', node 'logits': the planned output shape [1, 1, 507905, 507905] is "
                        "empty or too large (limits: 65536 channels, 16384 pixels per side)");
  EXPECT_ERROR_CONTAINS(runtime::Engine::from_model(model("Conv", "pads", {16384, 16384, 16384, 16384}), {runtime::Precision::F32, 1}),
                        "runtime model 'geometry', node 'logits': the planned output shape [1, 1, 32800, 32800] is "
                        "empty or too large (limits: 65536 channels, 16384 pixels per side)");
}

// --- `leanseg export --format runtime` ------------------------------------------------------------

TEST(RuntimeCli, ExportsARegistryModelByName) {
  test::TempDir dir;
  const std::string path = dir.file("u.lsr");
  const auto r = test::run_cli("export --model unet-32 --format runtime --input-size 64 --out " + path);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("wrote " + path + ": leanseg runtime v1, "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("input [1, 1, 64, 64]"), std::string::npos) << r.out;
  const RuntimeModel m = read_runtime_model(path);
  EXPECT_EQ(m.graph.inputs[0].shape, (std::vector<int64_t>{1, 1, 64, 64}));
  EXPECT_EQ(m.graph.outputs[0].name, "logits");
  EXPECT_EQ(m.config["arch"], "unet-32");
  EXPECT_EQ(m.preprocessing["input_height"], 256);  // the model's, not the export size
  EXPECT_EQ(m.size_divisor, 32);
  EXPECT_TRUE(m.activation_absmax.empty());
  auto model = test::random_model("unet-32");
  GraphInputShape shape;
  shape.height = shape.width = 64;
  const Graph expected = model_graph(*model, shape);
  EXPECT_EQ(m.graph.op_counts(), expected.op_counts());
  EXPECT_EQ(m.graph.parameter_count(), expected.parameter_count());
  EXPECT_NE(r.out.find(std::to_string(expected.parameter_count()) + " parameters"), std::string::npos) << r.out;
}

// A trained model file → .lsr → the reference interpreter gives LibTorch's logits.
TEST(RuntimeCli, ExportedModelFileRunsLikeLibTorch) {
  test::TempDir dir;
  auto model = test::random_model("mobilenet-aspp-se-unet-lite");
  Preprocessing pre;
  pre.input_height = pre.input_width = 64;
  save_model(dir.file("m.safetensors"), model, pre);
  const auto r = test::run_cli("export --model " + dir.file("m.safetensors") + " --format runtime --out " + dir.file("m.lsr"));
  ASSERT_EQ(r.code, 0) << r.out;
  const RuntimeModel m = read_runtime_model(dir.file("m.lsr"));
  EXPECT_EQ(m.preprocessing, pre.to_json());
  EXPECT_EQ(m.config, model->config().to_json());

  torch::manual_seed(11);
  const torch::Tensor x = torch::randn({1, 1, 64, 64});
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = model->forward(x);
  }
  auto input = runtime::PlainTensor::floats({1, 1, 64, 64}, std::vector<float>(x.data_ptr<float>(), x.data_ptr<float>() + x.numel()));
  auto values = runtime::run_reference(m.graph, {{"image", input}});
  const auto& logits = values.at("logits");
  ASSERT_EQ(logits.shape, (std::vector<int64_t>{1, 1, 64, 64}));
  const torch::Tensor ours = torch::from_blob(const_cast<float*>(logits.f32.data()), {1, 1, 64, 64}).clone();
  EXPECT_LE(test::relative_difference(ours, expected), 1e-4);
}

TEST(RuntimeCli, OnnxOnlyOptionsAndBadRequestsFailClearly) {
  test::TempDir dir;
  const std::string out = " --out " + dir.file("x.lsr");
  auto r = test::run_cli("export --model unet-32 --format runtime --dynamic-size" + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--dynamic-size/--dynamic-batch apply to --format onnx only"), std::string::npos) << r.out;
  r = test::run_cli("export --model unet-32 --format runtime --dynamic-batch" + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--dynamic-size/--dynamic-batch apply to --format onnx only"), std::string::npos) << r.out;
  r = test::run_cli("export --model unet-32 --format runtime --opset 13" + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--opset applies to --format onnx only"), std::string::npos) << r.out;
  r = test::run_cli("export --model unet-32 --format lsr" + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("unknown format 'lsr' (onnx, runtime)"), std::string::npos) << r.out;
  r = test::run_cli("export --model unet-32 --format runtime --input-size 100" + out);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--input-size 100 must be a positive multiple of 32"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.lsr")));
}

// Hostile input (issue 17): 65536 wrote a file leanseg-infer --bench crashed on; 100000 ran
// out of memory after a minute. Refused before the model is loaded, nothing written.
TEST(RuntimeCli, InputSizeAboveTheLimitIsRefusedBeforeAnythingIsWritten) {
  test::TempDir dir;
  for (const char* size : {"65536", "100000"}) {
    const auto r = test::run_cli("export --model unet-32 --format runtime --input-size " + std::string(size) + " --out " +
                                 dir.file("x.lsr"));
    EXPECT_EQ(r.code, 2);  // a usage error
    EXPECT_NE(r.out.find("leanseg: usage error: --input-size: input size " + std::string(size) + "x" + size +
                         " (HxW) exceeds the limit of 16384 pixels per side\n"),
              std::string::npos)
        << r.out;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.lsr")));
}

// A model file whose metadata says input size 10^9: refused when the model is loaded.
TEST(RuntimeCli, MetadataInputSizeAboveTheLimitIsRefused) {
  test::TempDir dir;
  const std::string model = dir.file("m3.safetensors");
  Preprocessing pre;
  pre.input_height = pre.input_width = 1000000000;
  save_model(model, create_model("efficient-unet"), pre);
  const auto r = test::run_cli("export --model " + model + " --format runtime --out " + dir.file("x.lsr"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("leanseg: error: '" + model + "': preprocessing: input size 1000000000x1000000000 (HxW) "
                       "exceeds the limit of 16384 pixels per side\n"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.lsr")));
}

}  // namespace
}  // namespace leanseg

namespace leanseg {
namespace {

// A zoo model with random weights as the runtime file's graph at side x side, with its config.
RuntimeModel exported_model(const std::string& name, int64_t side) {
  auto model = test::random_model(name);
  GraphInputShape shape;
  shape.height = shape.width = side;
  RuntimeModel m;
  m.graph = model_graph(*model, shape);
  m.config = model->config().to_json();
  m.preprocessing = nlohmann::json::object();
  return m;
}

// Packed 4/2/8-bit conv weights: a much smaller file that loads to exactly the model written,
// and that the engine runs like the in-memory model; corrupt packed entries are refused.
TEST(RuntimePackedWeights, SmallerFileExpandsToTheSameModel) {
  const RuntimeModel plain = exported_model("mobilenet-aspp-se-unet-lite", 64);
  const size_t f32_bytes = serialize_runtime_model(plain).size();
  for (int bits : {8, 4, 2}) {
    SCOPED_TRACE(bits);
    RuntimeModel packed = plain;
    pack_conv_weights(packed, bits);
    EXPECT_FALSE(packed.packed_weights.empty());
    const auto bytes = serialize_runtime_model(packed);
    EXPECT_LT(static_cast<double>(bytes.size()), f32_bytes * (bits / 32.0 + 0.06)) << "file bytes " << bytes.size();
    const RuntimeModel back = parse_runtime_model(bytes, "packed.lsr");
    ASSERT_EQ(back.graph.initializers.size(), packed.graph.initializers.size());
    for (const auto& t : packed.graph.initializers) EXPECT_EQ(back.graph.initializer(t.name)->f32, t.f32) << t.name;
    // Each weight within half a quantization step of the float one.
    for (const auto& [name, p] : packed.packed_weights) {
      const auto& w = plain.graph.initializer(name)->f32;
      const auto& q = packed.graph.initializer(name)->f32;
      const size_t per = w.size() / p.scale.size();
      for (size_t i = 0; i < w.size(); i += 5) EXPECT_LE(std::abs(w[i] - q[i]), p.scale[i / per] / 2 * 1.001f) << name;
    }
  }
  // The engine runs the file like the model it was written from.
  RuntimeModel packed = plain;
  pack_conv_weights(packed, 4);
  test::TempDir dir;
  write_runtime_model(packed, dir.file("p.lsr"));
  auto from_file = runtime::Engine::load(dir.file("p.lsr"), {runtime::Precision::F32, 1});
  auto in_memory = runtime::Engine::from_model(packed, {runtime::Precision::F32, 1});
  torch::manual_seed(2);
  const auto x = torch::randn({1, 1, 64, 64});
  const std::vector<float> a = from_file.run(x.data_ptr<float>());
  EXPECT_EQ(a, in_memory.run(x.data_ptr<float>()));
}

TEST(RuntimePackedWeights, CorruptPackedEntriesAreRefused) {
  RuntimeModel m = exported_model("efficient-unet", 32);
  pack_conv_weights(m, 4);
  const std::string name = m.packed_weights.begin()->first;
  RuntimeModel bad = m;
  bad.packed_weights[name].scale.pop_back();
  EXPECT_ERROR_CONTAINS(serialize_runtime_model(bad), "scales and");
  bad = m;
  bad.packed_weights[name].codes.pop_back();
  EXPECT_ERROR_CONTAINS(serialize_runtime_model(bad), name);
  bad = m;
  bad.graph.initializers[0].f32[0] += 1;  // values that the codes do not give
  if (bad.packed_weights.count(bad.graph.initializers[0].name))
    EXPECT_ERROR_CONTAINS(serialize_runtime_model(bad), "does not expand to the graph's values");
  EXPECT_ERROR_CONTAINS(pack_conv_weights(bad, 3), "unknown bit-width 3");
}

}  // namespace
}  // namespace leanseg

namespace leanseg {
namespace {

// --- integrity (issue 17): checksums, non-finite weights, zero points -------------------------------

// Offset of tensor `name`'s first byte in the serialised file.
size_t tensor_offset(const std::vector<unsigned char>& bytes, const std::string& name) {
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  const auto file = SafeTensorsFile::parse(bytes, "x.lsr");
  return 8 + static_cast<size_t>(header) + file.at(name).begin;
}

size_t find_text(const std::vector<unsigned char>& bytes, const std::string& text) {
  const std::string all(bytes.begin(), bytes.end());
  const size_t at = all.find(text);
  EXPECT_NE(at, std::string::npos) << text;
  return at;
}

TEST(RuntimeFileIntegrity, WrittenFilesCarryChecksumsThatLoadVerified) {
  const auto bytes = serialize_runtime_model(tiny_model());
  const auto file = SafeTensorsFile::parse(bytes, "x.lsr");
  const json sums = json::parse(file.metadata().at(kRuntimeMetadataKey)).at("checksums");
  EXPECT_EQ(sums.at("algorithm"), "fnv1a-64");
  EXPECT_EQ(sums.at("tensors").size(), file.tensors().size());
  EXPECT_EQ(sums.at("tensors").at("conv.weight").get<std::string>().size(), 16u);
  EXPECT_TRUE(parse_runtime_model(bytes, "x.lsr").has_checksums);
  // serialize → parse → serialize stays byte-identical with the checksums.
  EXPECT_EQ(serialize_runtime_model(parse_runtime_model(bytes, "x.lsr")), bytes);
}

TEST(RuntimeFileIntegrity, FilesWithoutChecksumsStillLoad) {
  const RuntimeModel m = tiny_model();
  const RuntimeModel back = parse_runtime_model(assemble(parts_of(m)), "old.lsr");  // parts_of drops them
  EXPECT_FALSE(back.has_checksums);
  expect_same_graph(back.graph, m.graph);
}

TEST(RuntimeFileIntegrity, AFlippedBitInAWeightIsRefusedNamingFileAndTensor) {
  auto bytes = serialize_runtime_model(tiny_model());
  bytes[tensor_offset(bytes, "conv.weight") + 4 * 2 + 3] ^= 0x40;  // an exponent bit of weight 2
  expect_refused(bytes, "tensor 'conv.weight' fails its checksum (stored ");
  auto bias = serialize_runtime_model(tiny_model());
  bias[tensor_offset(bias, "conv.bias")] ^= 0x01;  // the lowest mantissa bit
  expect_refused(bias, "tensor 'conv.bias' fails its checksum");
}

TEST(RuntimeFileIntegrity, AFlippedBitInTheGraphIsRefused) {
  // HardSigmoid's alpha 0.1666666716337204 -> 0.1766666716337204: still a valid graph.
  auto bytes = serialize_runtime_model(tiny_model());
  bytes[find_text(bytes, "0.1666666716337204") + 3] ^= 0x01;
  expect_refused(bytes, "the metadata fails its checksum");
}

TEST(RuntimeFileIntegrity, ChecksumsThatDoNotCoverTheFileAreRefused) {
  const RuntimeModel m = tiny_model();
  const auto file = SafeTensorsFile::parse(serialize_runtime_model(m), "x.lsr");
  const json full = json::parse(file.metadata().at(kRuntimeMetadataKey));
  Parts p = parts_of(m);
  p.meta = full;
  p.meta["checksums"]["tensors"].erase("six");  // the metadata's own checksum excludes the checksums
  expect_refused(assemble(p), "tensor 'six' has no checksum: the file was altered");
  p.meta = full;
  p.meta["checksums"]["algorithm"] = "crc32";
  expect_refused(assemble(p), "unknown algorithm 'crc32'");
}

TEST(RuntimeFileIntegrity, NonFiniteWeightsAreRefusedByReaderWriterAndEngine) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  RuntimeModel m = tiny_model();
  m.graph.initializers[0].f32[3] = nan;
  EXPECT_ERROR_CONTAINS(serialize_runtime_model(m), "tensor 'conv.weight' holds 1 non-finite value (the first, NaN, "
                                                    "at element 3 of 18)");
  EXPECT_ERROR_CONTAINS(runtime::Engine::from_model(m, {runtime::Precision::F32, 1}), "tensor 'conv.weight' holds");
  static const float bias[2] = {inf, -inf};
  expect_refused_after(
      [](Parts& p) {
        for (auto& t : p.tensors)
          if (t.name == "conv.bias") t.data = bias;
      },
      "tensor 'conv.bias' holds 2 non-finite values (the first, +inf, at element 0 of 2)");
}

TEST(RuntimeFileIntegrity, PackedZeroPointOutOfRangeIsRefused) {
  RuntimeModel m = exported_model("efficient-unet", 32);
  pack_conv_weights(m, 4);
  const std::string name = m.packed_weights.begin()->first;
  RuntimeModel bad = m;
  bad.packed_weights[name].zero_point[0] = 255;
  EXPECT_ERROR_CONTAINS(serialize_runtime_model(bad), "zero point 255 of channel 0 does not fit in 4 bits");
  // A file with zero point 255 and no checksums (a hostile file): refused all the same.
  const auto bytes = serialize_runtime_model(m);
  const auto file = SafeTensorsFile::parse(bytes, "x.lsr");
  json meta = json::parse(file.metadata().at(kRuntimeMetadataKey));
  meta.erase("checksums");
  std::vector<uint8_t> zero_points;
  std::vector<TensorToWrite> tensors;
  for (const auto& t : file.tensors()) {
    tensors.push_back({t.name, t.dtype, t.shape, file.data(t), t.nbytes()});
    if (t.name == name + ".q_zero_point") {
      zero_points.assign(file.data(t), file.data(t) + t.nbytes());
      zero_points[0] = 255;
      tensors.back().data = zero_points.data();
    }
  }
  expect_refused(serialize_safetensors(tensors, {{kRuntimeMetadataKey, meta.dump()}}),
                 "zero point 255 of channel 0 does not fit in 4 bits");
}

}  // namespace
}  // namespace leanseg
