// Structured pruning (C2): channels removed for real across BN, SE blocks, concat skips, residual
// adds and transposed convs; before fine-tuning the smaller model computes exactly what the
// original computes with the same channels zeroed; the result saves, reloads and exports.
#include <filesystem>

#include "leanseg/compress.h"
#include "leanseg/error.h"
#include "leanseg/graph_export.h"
#include "leanseg/info.h"
#include "leanseg/model_file.h"
#include "leanseg/runtime.h"
#include "model_test_util.h"

namespace leanseg {
namespace {

ModelConfig small_config(const std::string& arch) {
  ModelConfig c;
  c.arch = arch;
  if (arch == "unet") c.options = {{"width", 8}};
  if (arch == "unet-resnet18") c.options = {{"decoder_channels", {32, 16, 16, 8, 8}}};
  if (arch == "efficient-unet") c.options = {{"channels", {8, 8, 16, 16, 32, 32}}, {"reduction", 2}, {"attention_heads", 2}};
  return c;
}

SegmentationModel random_small(const std::string& arch) {
  auto m = create_model(small_config(arch));
  test::randomize_weights(*m, 11);
  m->eval();
  return m;
}

torch::Tensor logits(SegmentationModel& m, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return m->forward(x);
}

class StructuredZoo : public ::testing::TestWithParam<std::string> {};

TEST_P(StructuredZoo, PrunedModelEqualsTheMaskedOriginalAndIsSmaller) {
  auto original = random_small(GetParam());
  auto masked = random_small(GetParam());
  auto pruned = random_small(GetParam());
  const StructuredPlan plan = structured_plan(*pruned, {0.3, false});
  ASSERT_FALSE(plan.groups.empty());
  for (size_t g = 0; g < plan.groups.size(); ++g)  // exactly round(0.3 C) per group, ≥ 1 kept
    EXPECT_EQ(static_cast<int64_t>(plan.removed[g].size()),
              std::min<int64_t>(plan.groups[g].channels - 1, std::llround(0.3 * static_cast<double>(plan.groups[g].channels))))
        << plan.groups[g].name;
  mask_structured(*masked, plan);
  apply_structured(*pruned, plan);

  torch::manual_seed(5);
  const auto x = torch::randn({2, 1, 64, 96});
  const auto ref = logits(masked, x), out = logits(pruned, x);
  EXPECT_LE(test::relative_difference(out, ref), 1e-5);
  EXPECT_GT((logits(original, x) - ref).abs().max().item<double>(), 1e-3) << "the masked channels must matter";

  const auto before = summarize(original, 64, 64), after = summarize(pruned, 64, 64);
  EXPECT_LT(after.params_total, before.params_total);
  EXPECT_LT(after.flops, before.flops);
  // Parameters removed = what the plan's slots say (each tensor loses the product of its kept axes).
  int64_t counted = 0;
  for (const auto& p : pruned->parameters()) counted += p.numel();
  EXPECT_EQ(counted, after.params_total);
}

TEST_P(StructuredZoo, PrunedFileReloadsBitExactlyAndExportsTheSmallerGraph) {
  auto pruned = random_small(GetParam());
  apply_structured(*pruned, structured_plan(*pruned, {0.5, false}));
  test::TempDir dir;
  const std::string path = dir.file("structured.safetensors");
  Preprocessing pre;
  pre.channels = {"gray"};
  save_model(path, pruned, pre);
  auto loaded = load_model(path);
  torch::manual_seed(6);
  const auto x = torch::randn({1, 1, 64, 64});
  EXPECT_TRUE(torch::equal(logits(pruned, x), logits(loaded.model, x)));
  EXPECT_EQ(count_params(*loaded.model).total, count_params(*pruned).total);

  // The exported graph is the smaller dense model, and the runtime agrees with LibTorch on it.
  GraphInputShape shape;
  shape.height = 64, shape.width = 64;
  RuntimeModel rt;
  rt.graph = model_graph(*loaded.model, shape);
  rt.size_divisor = loaded.model->size_divisor();
  EXPECT_LT(rt.graph.parameter_count(), model_graph(*random_small(GetParam()), shape).parameter_count());
  auto engine = runtime::Engine::from_model(rt, {runtime::Precision::F32, 1});
  const auto& y = engine.run(x.data_ptr<float>());
  const auto engine_out = torch::from_blob(const_cast<float*>(y.data()), {1, 1, 64, 64}, torch::kFloat32);
  EXPECT_LE(test::relative_difference(engine_out, logits(pruned, x)), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Compress, StructuredZoo,
                         ::testing::Values("unet", "efficient-unet", "mobilenet-aspp-se-unet-lite", "mobilenet-aspp-se-unet",
                                           "unet-resnet18"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s)
                             if (c == '-') c = '_';
                           return s;
                         });

TEST(StructuredPrune, RemovesTheLeastImportantChannels) {
  auto m = random_small("unet");
  {
    torch::NoGradGuard no_grad;  // channels 2 and 5 of enc1's first conv: tiny weights
    auto params = m->named_parameters();
    params["enc1.0.0.weight"].index_fill_(0, torch::tensor({2, 5}), 1e-6);
  }
  const StructuredPlan plan = structured_plan(*m, {0.25, false});  // 8 channels → 2 removed
  for (size_t g = 0; g < plan.groups.size(); ++g)
    if (plan.groups[g].name == "enc1.mid") EXPECT_EQ(plan.removed[g], (std::vector<int64_t>{2, 5}));
}

TEST(StructuredPrune, RewiresConcatSkipsThroughBothHalves) {
  auto m = random_small("unet");
  apply_structured(*m, structured_plan(*m, {0.5, false}));
  auto params = m->named_parameters();
  // dec1 reads [up(x) (8 → 4 channels), enc1 skip (8 → 4)]; its first conv now reads 8 channels.
  EXPECT_EQ(params["dec1_up.up.weight"].size(1), 4);
  EXPECT_EQ(params["enc1.1.0.weight"].size(0), 4);
  EXPECT_EQ(params["dec1.0.0.weight"].size(1), 8);
  EXPECT_EQ(params["head.weight"].size(1), 4);
}

TEST(StructuredPrune, KeepsTheFrozenEncoderOfM1) {
  auto m = create_model("mobilenet-aspp-se-unet");
  ModelConfig c = m->config();
  const auto encoder_before = count_params(*m).frozen;
  ASSERT_GT(encoder_before, 0);
  apply_structured(*m, structured_plan(*m, {0.3, false}));
  EXPECT_EQ(count_params(*m).frozen, encoder_before);
  EXPECT_LT(count_params(*m).trainable, count_params(*create_model(c)).trainable * 0.8);
}

TEST(StructuredPrune, BadRatiosFailClearly) {
  auto m = random_small("unet");
  EXPECT_ERROR_CONTAINS(structured_plan(*m, {1.0, false}), "sparsity must be in [0, 1), got 1");
  EXPECT_ERROR_CONTAINS(structured_plan(*m, {-0.1, false}), "sparsity must be in [0, 1)");
}

TEST(StructuredPrune, ResizedTensorsInAFileAreValidated) {
  auto m = random_small("unet");
  EXPECT_ERROR_CONTAINS(m->resize_tensors({{"enc1.0.0.nope", {1}}}), "the model has no such tensor");
  EXPECT_ERROR_CONTAINS(m->resize_tensors({{"enc1.0.0.weight", {4, 1, 3}}}), "the rank must stay the same");
  EXPECT_ERROR_CONTAINS(m->resize_tensors({{"enc1.0.0.weight", {0, 1, 3, 3}}}), "cannot have shape");
}

}  // namespace
}  // namespace leanseg
