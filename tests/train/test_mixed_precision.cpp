// bf16 mixed precision (Bf16Autocast, `train --bf16`): the step computes in bfloat16 and keeps
// float32 master weights; it matches the float32 step within bf16's rounding and learns as well.
#include <ATen/autocast_mode.h>

#include "leanseg/model_file.h"
#include "leanseg/tensor_io.h"
#include "leanseg/train.h"
#include "model_test_util.h"
#include "train_test_util.h"

namespace leanseg {
namespace {

#define SKIP_WITHOUT_BF16()                                                                                    \
  if (!bf16_trains_fast_on_this_cpu()) GTEST_SKIP() << "this CPU has no AVX512-BF16 (LibTorch would emulate " \
                                                       "bfloat16; --bf16 is for CPUs that have it)"

TEST(MixedPrecision, ScopeTurnsCpuAutocastOnAndRestoresTheCallersState) {
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
  {
    Bf16Autocast off(false);
    EXPECT_FALSE(at::autocast::is_cpu_enabled());
  }
  {
    Bf16Autocast outer(true);
    EXPECT_TRUE(at::autocast::is_cpu_enabled());
    EXPECT_EQ(at::autocast::get_autocast_cpu_dtype(), at::kBFloat16);
    {
      Bf16Autocast inner(true);
      EXPECT_TRUE(at::autocast::is_cpu_enabled());
    }
    EXPECT_TRUE(at::autocast::is_cpu_enabled());  // the outer scope is still open
  }
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
}

// Losses see bf16 logits under autocast and compute in float32: the same value as on the
// float32 copy of those logits, returned as float32 (no CPU feature needed).
TEST(MixedPrecision, LossesOfBf16LogitsAreComputedInFloat32) {
  torch::manual_seed(5);
  const auto s16 = torch::randn({2, 1, 8, 8}).to(torch::kBFloat16), t16 = torch::randn({2, 1, 8, 8}).to(torch::kBFloat16);
  const auto y = (torch::rand({2, 1, 8, 8}) > 0.5).to(torch::kFloat32);
  const auto seg = segmentation_loss(s16, y, LossOptions()), distill = distillation_loss(s16, t16, 2.0);
  EXPECT_EQ(seg.scalar_type(), torch::kFloat32);
  EXPECT_EQ(distill.scalar_type(), torch::kFloat32);
  EXPECT_DOUBLE_EQ(seg.item<double>(), segmentation_loss(s16.to(torch::kFloat32), y, LossOptions()).item<double>());
  EXPECT_DOUBLE_EQ(distill.item<double>(),
                   distillation_loss(s16.to(torch::kFloat32), t16.to(torch::kFloat32), 2.0).item<double>());
}

// One step of the tiny U-Net on the same batch from the same weights, float32 and bf16: the
// convolutions run in bfloat16, every parameter and gradient stays float32, and loss and
// gradients agree within bf16's 8-bit mantissa.
TEST(MixedPrecision, Bf16StepMatchesTheFloat32StepWithinTolerance) {
  SKIP_WITHOUT_BF16();
  TrainOptions o = test::tiny_options("");
  torch::manual_seed(3);
  ModelConfig config;
  config.arch = o.model, config.options = o.model_options;
  auto model = create_model(config);
  model->eval();  // no dropout: both steps must see the same network
  const auto x = torch::rand({4, 1, 64, 64});
  const auto y = (torch::rand({4, 1, 64, 64}) > 0.7).to(torch::kFloat32);
  struct Step {
    double loss;
    torch::Tensor gradients;  // every parameter's, flattened into one vector
    torch::ScalarType logits_type;
  };
  auto step = [&](bool bf16) {
    for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
    torch::Tensor loss, logits;
    {
      Bf16Autocast autocast(bf16);
      logits = model->forward(x);
      loss = segmentation_loss(logits, y, o.loss);
    }
    loss.backward();
    std::vector<torch::Tensor> grads;
    for (auto& p : model->parameters())
      if (p.grad().defined()) grads.push_back(p.grad().flatten());
    return Step{loss.item<double>(), torch::cat(grads), logits.scalar_type()};
  };
  const Step fp32 = step(false), bf16 = step(true);
  EXPECT_EQ(fp32.logits_type, torch::kFloat32);
  EXPECT_EQ(bf16.logits_type, torch::kBFloat16);  // the forward really ran in bf16
  for (auto& p : model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(bf16.loss, fp32.loss, 0.02 * std::abs(fp32.loss));
  ASSERT_EQ(bf16.gradients.numel(), fp32.gradients.numel());
  ASSERT_GT(fp32.gradients.numel(), 0);
  EXPECT_EQ(bf16.gradients.scalar_type(), torch::kFloat32);  // float32 gradients for the float32 master weights
  const double cosine = (fp32.gradients * bf16.gradients).sum().item<double>() /
                        (fp32.gradients.norm().item<double>() * bf16.gradients.norm().item<double>());
  EXPECT_GT(cosine, 0.99);
}

// Every zoo architecture runs a bf16 step (M1's ASPP pooling keeps its GroupNorm in float32:
// LibTorch 1.13 has no bfloat16 GroupNorm with float32 weights) with float32 gradients, also
// with M1's MobileNetV2 encoder trained (its ReLU6 backward has no bfloat16 kernel in LibTorch).
TEST(MixedPrecision, EveryZooModelTrainsAStepInBf16) {
  SKIP_WITHOUT_BF16();
  const std::pair<const char*, nlohmann::json> variants[] = {
      {"mobilenet-aspp-se-unet", nlohmann::json::object()},
      {"mobilenet-aspp-se-unet", {{"encoder_frozen", false}}},
      {"mobilenet-aspp-se-unet", {{"encoder_frozen", false}, {"encoder_bn_frozen", true}}},
      {"mobilenet-aspp-se-unet-lite", nlohmann::json::object()},
      {"unet-32", nlohmann::json::object()},
      {"efficient-unet", nlohmann::json::object()},
      {"unet-resnet18", nlohmann::json::object()}};
  for (const auto& [arch_name, options] : variants) {
    const std::string arch = std::string(arch_name) + " " + options.dump();
    torch::manual_seed(1);
    ModelConfig config;
    config.arch = arch_name;
    config.options = options;
    auto model = create_model(config);
    model->train();
    const auto x = torch::rand({2, 1, 64, 64});
    const auto y = (torch::rand({2, 1, 64, 64}) > 0.7).to(torch::kFloat32);
    torch::Tensor loss;
    {
      Bf16Autocast autocast(true);
      loss = segmentation_loss(model->forward(x), y, LossOptions());
    }
    loss.backward();
    EXPECT_TRUE(std::isfinite(loss.item<double>())) << arch;
    int with_grad = 0;
    for (auto& p : model->parameters())
      if (p.grad().defined()) {
        EXPECT_EQ(p.grad().scalar_type(), torch::kFloat32) << arch;
        ++with_grad;
      }
    EXPECT_GT(with_grad, 0) << arch;
    if (!options.value("encoder_frozen", true))
      for (auto& p : model->named_parameters())
        if (p.key().rfind("encoder.", 0) == 0) {
          ASSERT_TRUE(p.value().grad().defined()) << arch << ": " << p.key();
          EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << arch << ": " << p.key();
        }
  }
}

// The bar: bf16 training reaches the float32 run's validation Dice on the synthetic task
// within 0.5 points, and the saved model is float32. One run of this task moves by up to a point
// with summation order alone (float32 in NCHW and channels-last: 0.961 and 0.972), so each
// precision is the mean of two seeds.
TEST(MixedPrecision, Bf16TrainingReachesTheFloat32RunsDice) {
  SKIP_WITHOUT_BF16();
  test::TempDir dir;
  const Dataset d = test::disc_dataset(48, 64, 1);
  auto mean_dice = [&](const std::string& out, bool bf16) {
    double sum = 0;
    for (const uint64_t seed : {1, 2}) {
      TrainOptions o = test::tiny_options(dir.file(out + std::to_string(seed)));
      o.epochs = 25;
      o.early_stop_patience = 25;
      o.bf16 = bf16;
      o.seed = seed;
      sum += train_model(d, o).best_val_dice;
    }
    return sum / 2;
  };
  const double fp32 = mean_dice("fp32", false), bf16 = mean_dice("bf16", true);
  EXPECT_GT(fp32, 0.9);
  EXPECT_GT(bf16, fp32 - 0.005) << "fp32 " << fp32 << ", bf16 " << bf16;
  const auto saved = load_model(dir.file("bf161/best.safetensors"));
  for (const auto& [name, t] : state_dict(*saved.model))  // (BatchNorm's step counters are integers)
    if (t.is_floating_point()) EXPECT_EQ(t.scalar_type(), torch::kFloat32) << name;
  EXPECT_EQ(load_model(dir.file("bf161/last.safetensors")).extra["train_options"]["bf16"], true);
}

// A resumed run keeps the precision it was started with (as it keeps its layout), whatever the
// preset's default or the flag now says: it must end on exactly the uninterrupted run's weights.
TEST(MixedPrecision, AResumedRunKeepsThePrecisionItStartedWith) {
  SKIP_WITHOUT_BF16();
  test::TempDir dir;
  const Dataset d = test::disc_dataset(16, 64, 8);
  auto options = [&](const std::string& out, bool bf16) {
    TrainOptions o = test::tiny_options(dir.file(out));
    o.epochs = 2;
    o.bf16 = bf16;
    return o;
  };
  for (const bool started_bf16 : {false, true}) {
    const std::string tag = started_bf16 ? "bf16" : "fp32";
    train_model(d, options(tag, started_bf16));
    const LoadedModel b = test::train_killed_then_resumed(d, options(tag + "_resumed", started_bf16),
                                                          options(tag + "_resumed", !started_bf16), dir.file(tag));
    EXPECT_EQ(b.extra["train_options"].value("bf16", false), started_bf16);
  }
}

// The -cpu presets (M1) train in bf16 where the CPU has AVX512-BF16 (measured on hc18-cpu: same
// accuracy, half the time).
TEST(MixedPrecision, CpuPresetsUseBf16WhereItIsFast) {
  EXPECT_EQ(preset("hc18-cpu").bf16, bf16_trains_fast_on_this_cpu());
  EXPECT_EQ(preset("bbbc010-cpu").bf16, bf16_trains_fast_on_this_cpu());
  EXPECT_FALSE(preset("hc18").bf16);  // the seeds' recipes stay float32
  EXPECT_FALSE(preset("bbbc010").bf16);
}

}  // namespace
}  // namespace leanseg
