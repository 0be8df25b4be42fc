// The C API (runtime_c.h): a program compiled as C (c_api_smoke.c) runs against a real .lsr file,
// and the C entry points give the same logits as the C++ engine and LibTorch.
#include <cmath>
#include <cstring>

#include "leanseg/graph_export.h"
#include "leanseg/preprocessing.h"
#include "leanseg/runtime.h"
#include "leanseg/runtime_c.h"
#include "leanseg/runtime_file.h"
#include "model_test_util.h"

namespace leanseg {
namespace {

constexpr int kSize = 64;

// unet-32 with random weights (model_test_util.h), exported at kSize×kSize to `path`.
SegmentationModel write_model(const std::string& path) {
  auto model = test::random_model("unet-32");
  GraphInputShape shape;
  shape.height = shape.width = kSize;
  RuntimeModel rt;
  rt.graph = model_graph(*model, shape);
  rt.preprocessing = Preprocessing{}.to_json();
  rt.config = model->config().to_json();
  rt.size_divisor = model->size_divisor();
  write_runtime_model(rt, path);
  return model;
}

TEST(CApi, SmokeProgramCompiledAsC) {
  test::TempDir dir;
  write_model(dir.file("m.lsr"));
  const std::string cmd = std::string(LEANSEG_C_API_SMOKE_PATH) + " " + dir.file("m.lsr") + " 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  while (p && fgets(buf.data(), buf.size(), p)) out += buf.data();
  const int status = p ? pclose(p) : -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_NE(out.find("all checks passed"), std::string::npos) << out;
}

TEST(CApi, LogitsAndProbabilitiesMatchTheEngineAndLibTorch) {
  test::TempDir dir;
  auto model = write_model(dir.file("m.lsr"));
  char err[512] = "";
  ls_engine* e = ls_engine_load(dir.file("m.lsr").c_str(), "fp32", 2, err, sizeof err);
  ASSERT_NE(e, nullptr) << err;
  ASSERT_EQ(ls_engine_input_channels(e), 1);
  ASSERT_EQ(ls_engine_input_height(e), kSize);
  ASSERT_EQ(ls_engine_input_width(e), kSize);

  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({1, 1, kSize, kSize});
  std::vector<float> logits(kSize * kSize), prob(kSize * kSize);
  ASSERT_EQ(ls_engine_run(e, x.data_ptr<float>(), logits.data(), err, sizeof err), 0) << err;
  ASSERT_EQ(ls_engine_probabilities(e, x.data_ptr<float>(), prob.data(), err, sizeof err), 0) << err;
  ls_engine_free(e);

  auto engine = runtime::Engine::load(dir.file("m.lsr"), {runtime::Precision::F32, 2});
  const auto& direct = engine.run(x.data_ptr<float>());
  ASSERT_EQ(direct.size(), logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    ASSERT_FLOAT_EQ(logits[i], direct[i]) << "pixel " << i;
    ASSERT_NEAR(prob[i], 1.0 / (1.0 + std::exp(-static_cast<double>(logits[i]))), 1e-6) << "pixel " << i;
  }

  torch::Tensor reference;
  {
    torch::NoGradGuard no_grad;
    reference = model->forward(x);
  }
  const auto ours = torch::from_blob(logits.data(), {1, 1, kSize, kSize}, torch::kFloat32);
  EXPECT_LE(test::relative_difference(ours, reference), 1e-4);
}

// LS_ENGINE_WINOGRAD asks for the Winograd kernel on any CPU, LS_ENGINE_DIRECT_CONVS turns it off,
// no flag takes EngineOptions' default (where it pays on this CPU).
TEST(CApi, ConvolutionFlagsChooseWinogradOrDirect) {
  test::TempDir dir;
  write_model(dir.file("m.lsr"));
  char err[512] = "";
  ls_engine* e = ls_engine_load_flags(dir.file("m.lsr").c_str(), "fp32", 2, LS_ENGINE_WINOGRAD, err, sizeof err);
  ASSERT_NE(e, nullptr) << err;
  torch::manual_seed(4);
  const torch::Tensor x = torch::randn({1, 1, kSize, kSize});
  std::vector<float> logits(kSize * kSize);
  ASSERT_EQ(ls_engine_run(e, x.data_ptr<float>(), logits.data(), err, sizeof err), 0) << err;
  ls_engine_free(e);
  auto engine = runtime::Engine::load(dir.file("m.lsr"), {runtime::Precision::F32, 2, true});
  ASSERT_GT(engine.winograd_layers(), 0u);
  EXPECT_EQ(logits, engine.run(x.data_ptr<float>()));
  e = ls_engine_load_flags(dir.file("m.lsr").c_str(), "fp32", 2, LS_ENGINE_DIRECT_CONVS, err, sizeof err);
  ASSERT_NE(e, nullptr) << err;
  ASSERT_EQ(ls_engine_run(e, x.data_ptr<float>(), logits.data(), err, sizeof err), 0) << err;
  ls_engine_free(e);
  auto direct = runtime::Engine::load(dir.file("m.lsr"), {runtime::Precision::F32, 2, false});
  EXPECT_EQ(direct.winograd_layers(), 0u);
  EXPECT_EQ(logits, direct.run(x.data_ptr<float>()));
  EXPECT_NE(logits, engine.run(x.data_ptr<float>()));  // rounding differs: it really switched
  e = ls_engine_load_flags(dir.file("m.lsr").c_str(), "fp32", 2, 0u, err, sizeof err);
  ASSERT_NE(e, nullptr) << err;
  ASSERT_EQ(ls_engine_run(e, x.data_ptr<float>(), logits.data(), err, sizeof err), 0) << err;
  ls_engine_free(e);
  auto by_default = runtime::Engine::load(dir.file("m.lsr"), {runtime::Precision::F32, 2});
  EXPECT_EQ(by_default.winograd_layers() > 0, runtime::winograd_is_fast_on_this_cpu());
  EXPECT_EQ(logits, by_default.run(x.data_ptr<float>()));
  // LS_ENGINE_FIXED_THREADS combines with either; the next bit is unknown.
  e = ls_engine_load_flags(dir.file("m.lsr").c_str(), "fp32", 2, LS_ENGINE_DIRECT_CONVS | LS_ENGINE_FIXED_THREADS, err,
                           sizeof err);
  ASSERT_NE(e, nullptr) << err;
  ASSERT_EQ(ls_engine_run(e, x.data_ptr<float>(), logits.data(), err, sizeof err), 0) << err;
  ls_engine_free(e);
  EXPECT_EQ(logits, direct.run(x.data_ptr<float>()));
  EXPECT_EQ(ls_engine_load_flags(dir.file("m.lsr").c_str(), "fp32", 2, 10u, err, sizeof err), nullptr);
  EXPECT_NE(std::string(err).find("unknown option bits 8"), std::string::npos) << err;
  EXPECT_EQ(ls_engine_load_flags(dir.file("m.lsr").c_str(), "fp32", 2, 3u, err, sizeof err), nullptr);
  EXPECT_NE(std::string(err).find("exclude each other"), std::string::npos) << err;
}

TEST(CApi, ErrorsComeBackAsMessagesNotExceptions) {
  test::TempDir dir;
  write_model(dir.file("m.lsr"));
  char err[512] = "";
  EXPECT_EQ(ls_engine_load(dir.file("missing.lsr").c_str(), nullptr, 1, err, sizeof err), nullptr);
  EXPECT_NE(std::string(err).find("missing.lsr"), std::string::npos) << err;
  EXPECT_EQ(ls_engine_load(dir.file("m.lsr").c_str(), "int4", 1, err, sizeof err), nullptr);
  EXPECT_NE(std::string(err).find("int4"), std::string::npos) << err;

  ls_engine* e = ls_engine_load(dir.file("m.lsr").c_str(), nullptr, 1, err, sizeof err);
  ASSERT_NE(e, nullptr) << err;
  EXPECT_NE(ls_engine_set_input_size(e, 50, 64, err, sizeof err), 0);
  EXPECT_GT(std::strlen(err), 0u);
  std::vector<float> out(kSize * kSize);
  EXPECT_NE(ls_engine_probabilities(e, nullptr, out.data(), err, sizeof err), 0);
  EXPECT_NE(std::string(err).find("input is NULL"), std::string::npos) << err;
  ls_engine_free(e);
}

// The C functions write K x H x W values per image: a file whose graph computes its output at
// another size (a strided conv: not one of leanseg's segmentation models) is refused with the
// shapes named and the caller's buffer untouched, where it used to be written past its end.
TEST(CApi, AnOutputThatIsNotKLogitsPerPixelIsRefusedNotWrittenPastTheBuffer) {
  test::TempDir dir;
  RuntimeModel rt;
  rt.graph.name = "strided";
  rt.graph.inputs.push_back({"image", {1, 1, 8, 8}, {"", "", "", ""}});
  GraphTensor w;
  w.name = "w";
  w.shape = {1, 1, 1, 1};
  w.f32 = {-1.f};
  rt.graph.initializers.push_back(w);
  rt.graph.nodes.push_back({"Conv", "conv", {"image", "w"}, {"logits"},
                            {GraphAttribute::of("kernel_shape", std::vector<int64_t>{1, 1}),
                             GraphAttribute::of("strides", std::vector<int64_t>{2, 2})}});
  rt.graph.outputs.push_back({"logits", {1, 1, 4, 4}, {"", "", "", ""}});
  rt.preprocessing = Preprocessing{}.to_json();
  rt.config = nlohmann::json::object();
  rt.size_divisor = 1;
  write_runtime_model(rt, dir.file("strided.lsr"));

  char err[512] = "";
  ls_engine* e = ls_engine_load(dir.file("strided.lsr").c_str(), "fp32", 1, err, sizeof err);
  ASSERT_NE(e, nullptr) << err;
  const std::vector<float> input(64, 0.5f);
  std::vector<float> out(64 + 1, -7.f);  // one guard value past the H x W the caller expects
  EXPECT_NE(ls_engine_run(e, input.data(), out.data(), err, sizeof err), 0);
  EXPECT_NE(std::string(err).find("[1, 1, 4, 4], not K logits per input pixel [1, 1, 8, 8]"), std::string::npos) << err;
  EXPECT_NE(ls_engine_run_batch(e, input.data(), 1, out.data(), err, sizeof err), 0);
  EXPECT_NE(ls_engine_probabilities_batch(e, input.data(), 1, out.data(), err, sizeof err), 0);
  EXPECT_EQ(out, std::vector<float>(65, -7.f));
  ls_engine_free(e);
  // The C++ engine runs it: its output is sized from the graph.
  auto engine = runtime::Engine::load(dir.file("strided.lsr"), {runtime::Precision::F32, 1});
  EXPECT_EQ(engine.output_shape(), (std::vector<int64_t>{1, 1, 4, 4}));
  const auto& logits = engine.run(input.data());
  ASSERT_EQ(logits.size(), 16u);
  EXPECT_FLOAT_EQ(logits[0], -0.5f);
}

}  // namespace
}  // namespace leanseg
