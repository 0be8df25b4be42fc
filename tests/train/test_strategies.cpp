// Training strategies (T4): QAT's straight-through estimator, the distillation loss, progressive
// resizing, the gradual pruning schedule, and training runs that use them (resume included).
#include <filesystem>
#include <set>

#include "compress/quantize.h"
#include "leanseg/compress.h"
#include "leanseg/error.h"
#include "leanseg/model_file.h"
#include "leanseg/tensor_io.h"
#include "model_test_util.h"
#include "train/strategies.h"
#include "train_test_util.h"

namespace leanseg {
namespace {

using test::disc_dataset;
using test::tiny_options;

SegmentationModel tiny_model(uint64_t seed) {
  ModelConfig c;
  c.arch = "efficient-unet";
  c.options = {{"channels", {8, 8, 16, 16, 32, 32}}, {"reduction", 2}, {"attention_heads", 2}};
  auto m = create_model(c);
  test::randomize_weights(*m, seed);
  return m;
}

size_t distinct_values(const torch::Tensor& t) {
  return std::get<0>(torch::_unique(t.detach().flatten())).numel();
}

TEST(Strategies, GradualSparsityFollowsTheCubicSchedule) {
  EXPECT_DOUBLE_EQ(gradual_sparsity(0.8, 0, 10), 0.0);
  EXPECT_NEAR(gradual_sparsity(0.8, 5, 10), 0.8 * (1 - 0.125), 1e-12);
  EXPECT_DOUBLE_EQ(gradual_sparsity(0.8, 10, 10), 0.8);
  EXPECT_DOUBLE_EQ(gradual_sparsity(0.8, 15, 10), 0.8);  // holds after the ramp
  for (int e = 1; e < 10; ++e) EXPECT_LT(gradual_sparsity(0.8, e, 10), gradual_sparsity(0.8, e + 1, 10));
}

TEST(Strategies, ProgressiveSizesGrowInMultiplesOf32) {
  TrainOptions o;
  o.input_size = 160, o.epochs = 10, o.progressive_start = 64;  // ramp: 5 epochs
  std::vector<int> got;
  for (int e = 1; e <= 6; ++e) got.push_back(progressive_size(o, e));
  EXPECT_EQ(got.front(), 64);
  EXPECT_EQ(got[4], 160);
  for (int s : got) EXPECT_EQ(s % 32, 0) << s;
  for (size_t i = 1; i < got.size(); ++i) EXPECT_GE(got[i], got[i - 1]);
  o.progressive_start = 0;
  EXPECT_EQ(progressive_size(o, 1), 160);
}

TEST(Strategies, FakeQuantizedWeightsAreOnTheGridAndRestoredExactly) {
  auto m = tiny_model(3);
  std::vector<torch::Tensor> before;
  for (const auto& [n, w] : compressible_weights(*m)) before.push_back(w.detach().clone());
  {
    FakeQuantizedWeights q(*m, 4, false);
    for (const auto& [n, w] : compressible_weights(*m)) EXPECT_LE(distinct_values(w), 16u) << n;
  }
  const auto after = compressible_weights(*m);
  for (size_t i = 0; i < after.size(); ++i) EXPECT_TRUE(torch::equal(after[i].second, before[i])) << after[i].first;
}

// The straight-through estimator: the fp32 weights receive exactly the gradient the quantized
// weights would get.
TEST(Strategies, QatGradientsAreThoseOfTheQuantizedWeights) {
  auto a = tiny_model(4), b = tiny_model(4);
  a->train(), b->train();
  {
    torch::NoGradGuard no_grad;
    for (auto& [n, w] : compressible_weights(*b)) w.copy_(affine_dequantize(affine_quantize(w, 4, true)));
  }
  torch::manual_seed(1);
  const auto x = torch::randn({2, 1, 64, 64});
  {
    FakeQuantizedWeights q(*a, 4, true);
    a->forward(x).square().mean().backward();
  }
  b->forward(x).square().mean().backward();
  const auto wa = compressible_weights(*a), wb = compressible_weights(*b);
  for (size_t i = 0; i < wa.size(); ++i) {
    ASSERT_TRUE(wa[i].second.grad().defined()) << wa[i].first;
    EXPECT_TRUE(torch::allclose(wa[i].second.grad(), wb[i].second.grad(), 1e-5, 1e-7)) << wa[i].first;
  }
}

TEST(Strategies, DistillationLossIsMinimalWhereStudentEqualsTeacher) {
  const auto teacher = torch::randn({1, 1, 8, 8}) * 3;
  auto student = teacher.clone().requires_grad_(true);
  const auto at_teacher = distillation_loss(student, teacher, 2.0);
  at_teacher.backward();
  EXPECT_LT(student.grad().abs().max().item<double>(), 1e-7);
  EXPECT_GT(distillation_loss(teacher + 1, teacher, 2.0).item<double>(), at_teacher.item<double>());
  EXPECT_GT(distillation_loss(-teacher, teacher, 2.0).item<double>(), distillation_loss(teacher + 1, teacher, 2.0).item<double>());
  EXPECT_ERROR_CONTAINS(distillation_loss(teacher, teacher, 0), "temperature must be > 0");
}

TEST(Strategies, QatRunSavesMasterWeightsWhoseQuantizationIsTheValidatedModelAndResumesExactly) {
  test::TempDir dir;
  const Dataset d = disc_dataset(16, 64, 5);
  auto options = [&](const std::string& out) {
    TrainOptions o = tiny_options(dir.file(out));
    o.qat_bits = 4;
    o.prune_target = 0.5;
    o.prune_epochs = 2;
    o.progressive_start = 32;
    o.progressive_epochs = 2;
    return o;
  };
  train_model(d, options("straight"));
  TrainOptions killed = options("resumed");
  killed.stop_after_epochs = 1;
  train_model(d, killed);
  TrainOptions resumed = options("resumed");
  resumed.resume = true;
  train_model(d, resumed);
  auto a = load_model(dir.file("straight/last.safetensors")), b = load_model(dir.file("resumed/last.safetensors"));
  const auto sa = state_dict(*a.model), sb = state_dict(*b.model);
  for (size_t i = 0; i < sa.size(); ++i) EXPECT_TRUE(torch::equal(sa[i].second, sb[i].second)) << sa[i].first;
  int64_t n = 0, zeros = 0;
  size_t most_distinct = 0;
  for (const auto& [name, w] : compressible_weights(*a.model)) {
    most_distinct = std::max(most_distinct, distinct_values(w));
    n += w.numel(), zeros += w.numel() - w.count_nonzero().item<int64_t>();
  }
  EXPECT_GT(most_distinct, 16u);  // the fp32 master weights, not their 4-bit values
  EXPECT_GE(zeros, n / 2);        // the schedule reached 50% by epoch 2 and kept it
  EXPECT_EQ(a.extra["train_options"]["qat"]["bits"], 4);
  // Storing the file as 4-bit codes gives exactly the weights validation ran with.
  save_model(dir.file("int4.safetensors"), a.model, a.preprocessing, a.extra, {"affine4", false});
  const auto stored = load_model(dir.file("int4.safetensors"));
  FakeQuantizedWeights validated(*a.model, 4, false);
  const auto sq = state_dict(*stored.model), sv = state_dict(*a.model);
  for (size_t i = 0; i < sq.size(); ++i) EXPECT_TRUE(torch::equal(sq[i].second, sv[i].second)) << sq[i].first;
}

TEST(Strategies, DistillationRunUsesTheTeacher) {
  test::TempDir dir;
  const Dataset d = disc_dataset(16, 64, 6);
  TrainOptions t = tiny_options(dir.file("teacher"));
  t.epochs = 1;
  train_model(d, t);
  TrainOptions s = tiny_options(dir.file("student"));
  s.epochs = 1;
  s.teacher = dir.file("teacher/best.safetensors");
  s.distill_alpha = 0.7;
  const auto r = train_model(d, s);
  EXPECT_TRUE(std::isfinite(r.history[0].train_loss));
  EXPECT_EQ(load_model(dir.file("student/best.safetensors")).extra["train_options"]["distillation"]["alpha"], 0.7);
  s.teacher = dir.file("missing.safetensors");
  s.out_dir = dir.file("no-teacher");
  EXPECT_ERROR_CONTAINS(train_model(d, s), "missing.safetensors");
  EXPECT_FALSE(std::filesystem::exists(s.out_dir)) << "refused only after the run folder was written";
}

TEST(Strategies, BadStrategyOptionsAreRejected) {
  const Dataset d = disc_dataset(4, 64, 7);
  test::TempDir dir;
  TrainOptions o = tiny_options(dir.file("bad"));
  o.qat_bits = 3;
  EXPECT_ERROR_CONTAINS(train_model(d, o), "quantization-aware training: unknown bit-width 3");
  o.qat_bits = 0, o.progressive_start = 48;
  EXPECT_ERROR_CONTAINS(train_model(d, o), "progressive resizing: the start size must be a multiple of 32");
  o.progressive_start = 0, o.distill_alpha = 1.5;
  EXPECT_ERROR_CONTAINS(train_model(d, o), "alpha must be in [0, 1]");
  o.distill_alpha = 0.5, o.prune_target = 1;
  EXPECT_ERROR_CONTAINS(train_model(d, o), "target sparsity must be in [0, 1)");
  // Refused before anything is written (split.json used to be there already, issue 17).
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad"))) << "the run folder was created";
  o.prune_target = 0, o.model = "no-such-model";
  EXPECT_ERROR_CONTAINS(train_model(d, o), "no-such-model");
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad"))) << "the run folder was created";
}

}  // namespace
}  // namespace leanseg

namespace leanseg {
namespace {

TEST(Strategies, ChannelsLastTrainingMatchesTheDefaultLayoutAndResumesExactly) {
  test::TempDir dir;
  const Dataset d = disc_dataset(16, 64, 8);
  auto options = [&](const std::string& out, bool channels_last) {
    TrainOptions o = tiny_options(dir.file(out));
    o.epochs = 2;
    o.channels_last = channels_last;
    return o;
  };
  const TrainResult nchw = train_model(d, options("nchw", false));
  const TrainResult nhwc = train_model(d, options("nhwc", true));
  ASSERT_EQ(nchw.history.size(), nhwc.history.size());
  // The same training, up to summation order: the layouts run different kernels (the whole
  // network channels-last, the upsampling as 1×1 conv + pixel_shuffle), whose rounding the
  // second epoch's updates amplify.
  for (size_t e = 0; e < nchw.history.size(); ++e)
    EXPECT_NEAR(nhwc.history[e].train_loss, nchw.history[e].train_loss, (e == 0 ? 1e-3 : 5e-3) * nchw.history[e].train_loss) << e;
  // Killed after epoch 1 in one layout, resumed asking for another: the run must end on exactly
  // the weights of the uninterrupted run `reference`; returns the resumed run's last model.
  auto resume_matches = [&](const std::string& out, bool started_channels_last, bool resumed_channels_last,
                            const std::string& reference) {
    return test::train_killed_then_resumed(d, options(out, started_channels_last), options(out, resumed_channels_last),
                                           dir.file(reference));
  };
  EXPECT_EQ(resume_matches("resumed", true, true, "nhwc").extra["train_options"]["channels_last"], true);
  // A run started in NCHW and resumed with the (channels-last) default continues in NCHW.
  EXPECT_EQ(resume_matches("resumed_nchw", false, true, "nchw").extra["train_options"]["channels_last"], false);
}

// The default layout is the one measured faster on the CPU kind: channels-last with AVX-512 only.
TEST(Strategies, TrainingLayoutDefaultsToTheFasterOneOnThisCpuKind) {
  EXPECT_EQ(channels_last_trains_faster_on_this_cpu(), static_cast<bool>(__builtin_cpu_supports("avx512f")));
  EXPECT_EQ(TrainOptions().channels_last, channels_last_trains_faster_on_this_cpu());
}

}  // namespace
}  // namespace leanseg
