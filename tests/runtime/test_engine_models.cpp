// The oneDNN engine on whole zoo models against LibTorch's eval forward (random weights with
// non-trivial BatchNorm statistics, model_test_util.h). fp32: max |Δlogit| ≤ 1e-3 absolute
// and ≤ 1e-4 of the logit range; bf16: within bf16's precision.
#include "leanseg/error.h"
#include "leanseg/graph_export.h"
#include "leanseg/runtime.h"
#include "model_test_util.h"
#include "runtime/calibrate.h"

namespace leanseg {
namespace {

struct Outputs {
  torch::Tensor libtorch, engine;
};

Outputs run_both(const std::string& name, runtime::Precision precision, int64_t h, int64_t w, int channels = 1) {
  auto model = test::random_model(name, channels);
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({1, channels, h, w});
  torch::Tensor reference;
  {
    torch::NoGradGuard no_grad;
    reference = model->forward(x);
  }
  GraphInputShape shape;
  shape.height = h, shape.width = w;
  RuntimeModel rt;
  rt.graph = model_graph(*model, shape);
  rt.size_divisor = model->size_divisor();
  auto engine = runtime::Engine::from_model(rt, {precision, 2});
  const auto& logits = engine.run(x.data_ptr<float>());
  return {reference, torch::from_blob(const_cast<float*>(logits.data()), {1, 1, h, w}, torch::kFloat32).clone()};
}

class EngineZoo : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineZoo, Fp32MatchesLibTorch) {
  const auto o = run_both(GetParam(), runtime::Precision::F32, 64, 96);
  EXPECT_LE((o.engine - o.libtorch).abs().max().item<double>(), 1e-3);
  EXPECT_LE(test::relative_difference(o.engine, o.libtorch), 1e-4);
}

// bf16 keeps 8 mantissa bits: through ~50 layers of a random-weight model the logits move by
// 2-4% of their range (measured), and masks of such models, whose logits crowd around 0, agree
// on ~98% of pixels. Trained models are checked on real images by `leanseg-infer`'s agreement
// report (README).
TEST_P(EngineZoo, Bf16StaysWithinBf16PrecisionOfLibTorch) {
  const auto o = run_both(GetParam(), runtime::Precision::BF16, 64, 64);
  const double agree = ((o.engine > 0) == (o.libtorch > 0)).to(torch::kFloat).mean().item<double>();
  EXPECT_LE(test::relative_difference(o.engine, o.libtorch), 0.06);
  EXPECT_GE(agree, 0.97);
}

INSTANTIATE_TEST_SUITE_P(Runtime, EngineZoo,
                         ::testing::Values("mobilenet-aspp-se-unet", "mobilenet-aspp-se-unet-lite", "unet-32",
                                           "efficient-unet"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

TEST(EngineZooExtra, TwoChannelModelAndASecondSize) {
  auto o = run_both("mobilenet-aspp-se-unet-lite", runtime::Precision::F32, 96, 64, 2);
  EXPECT_LE(test::relative_difference(o.engine, o.libtorch), 1e-4);
}

}  // namespace
}  // namespace leanseg

namespace leanseg {
namespace {

// int8 with calibration on inputs drawn like the test input: error of the order of 8-bit
// quantisation through the network.
TEST_P(EngineZoo, Int8WithCalibrationTracksLibTorch) {
  auto model = test::random_model(GetParam());
  GraphInputShape shape;
  shape.height = shape.width = 64;
  RuntimeModel rt;
  rt.graph = model_graph(*model, shape);
  std::vector<runtime::PlainTensor> calib;
  for (int i = 0; i < 4; ++i) {
    torch::manual_seed(100 + i);
    const auto c = torch::randn({1, 1, 64, 64});
    calib.push_back(runtime::PlainTensor::floats({1, 1, 64, 64}, {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()}));
  }
  rt.activation_absmax = runtime::calibrate_activations(rt.graph, calib);
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({1, 1, 64, 64});
  torch::Tensor reference;
  {
    torch::NoGradGuard no_grad;
    reference = model->forward(x);
  }
  auto engine = runtime::Engine::from_model(rt, {runtime::Precision::I8, 2});
  const auto& logits = engine.run(x.data_ptr<float>());
  const auto ours = torch::from_blob(const_cast<float*>(logits.data()), {1, 1, 64, 64}, torch::kFloat32).clone();
  const double agree = ((ours > 0) == (reference > 0)).to(torch::kFloat).mean().item<double>();
  const double rel = test::relative_difference(ours, reference);
  const double mean_rel = (ours - reference).abs().mean().item<double>() / (reference.max() - reference.min()).item<double>();
  std::printf("int8 %s: relative max %.4f mean %.4f, mask agreement %.4f\n", GetParam().c_str(), rel, mean_rel, agree);
  // Measured (random weights, 64×64): max 4-9%, mean 0.7-1.7% of the logit range; masks agree
  // on 94-100% of pixels (random models' logits crowd around 0). A wrong scale or bias shows
  // as a mean error of 4-9%.
  EXPECT_LE(rel, 0.15);
  EXPECT_LE(mean_rel, 0.03);
  EXPECT_GE(agree, 0.9);
}

TEST(EngineInt8, RefusesAModelWithoutCalibration) {
  RuntimeModel rt;
  rt.graph = model_graph(*test::random_model("unet-32"), GraphInputShape{64, 64});
  const runtime::EngineOptions int8{runtime::Precision::I8, 1};
  EXPECT_ERROR_CONTAINS(runtime::Engine::from_model(rt, int8), "--calibrate");
}

}  // namespace
}  // namespace leanseg

namespace leanseg {
namespace {

// Engine::load drops each conv's plain weights once packed and reads them back from the file
// when another input size is planned: results at every size equal an engine that kept them.
TEST(EngineFromFile, ReplansForANewSizeAfterDroppingWeights) {
  auto model = test::random_model("mobilenet-aspp-se-unet-lite");
  GraphInputShape shape;
  shape.height = shape.width = 64;
  RuntimeModel rt;
  rt.graph = model_graph(*model, shape);
  rt.size_divisor = 32;
  rt.preprocessing = nlohmann::json::object();
  rt.config = model->config().to_json();
  test::TempDir dir;
  const std::string path = dir.file("m.lsr");
  write_runtime_model(rt, path);
  for (auto precision : {runtime::Precision::F32, runtime::Precision::BF16}) {
    auto from_file = runtime::Engine::load(path, {precision, 1});
    auto in_memory = runtime::Engine::from_model(rt, {precision, 1});
    for (int size : {64, 96, 64}) {
      SCOPED_TRACE(size);
      from_file.set_input_size(size, size);
      in_memory.set_input_size(size, size);
      torch::manual_seed(size);
      const auto x = torch::randn({1, 1, size, size});
      const auto a = from_file.run(x.data_ptr<float>());
      const auto& b = in_memory.run(x.data_ptr<float>());
      EXPECT_EQ(a, b);
    }
  }
}

}  // namespace
}  // namespace leanseg
