#include "leanseg/error.h"
#include "leanseg/info.h"
#include "leanseg/model.h"
#include "leanseg/ops.h"
#include "param_formula.h"
#include "test_util.h"
#include "models/blocks.h"

namespace leanseg {
namespace {

using Shape = std::vector<int64_t>;

TEST(Zoo, RegistryListsEveryArchitecture) {
  const std::vector<std::string> expected = {"mobilenet-aspp-se-unet", "mobilenet-aspp-se-unet-lite", "unet",
                                             "unet-32", "efficient-unet", "unet-mobilenet_v2", "unet-resnet18",
                                             "unet-resnet34"};
  EXPECT_EQ(model_names(), expected);
  EXPECT_ERROR_CONTAINS(create_model("resnet-unet"), "unknown model 'resnet-unet' (known: mobilenet-aspp-se-unet");
}

TEST(Zoo, M1StageShapesEqualTheSeedTable) {
  torch::manual_seed(0);
  auto m = create_model("mobilenet-aspp-se-unet");
  const auto s = summarize(m, 256, 256);
  const std::vector<std::pair<std::string, Shape>> expected = {
      {"enc0", {1, 32, 256, 256}}, {"enc1", {1, 16, 128, 128}}, {"enc2", {1, 24, 64, 64}},
      {"enc3", {1, 32, 32, 32}},   {"enc4", {1, 96, 16, 16}},   {"enc5", {1, 1280, 8, 8}},
      {"bottleneck", {1, 512, 8, 8}}, {"dec5", {1, 256, 16, 16}}, {"dec4", {1, 128, 32, 32}},
      {"dec3", {1, 64, 64, 64}},   {"dec2", {1, 32, 128, 128}}, {"dec1", {1, 32, 256, 256}},
      {"head", {1, 1, 256, 256}}};
  ASSERT_EQ(s.stages.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(s.stages[i].name, expected[i].first);
    EXPECT_EQ(s.stages[i].shape, expected[i].second) << expected[i].first;
  }
}

TEST(Zoo, M1ParameterCountsEqualTheLayerFormula) {
  for (int in : {1, 2, 3}) {
    SCOPED_TRACE(in);
    const auto c = count_params(*create_model("mobilenet-aspp-se-unet", in));
    EXPECT_EQ(c.frozen, test::mobilenet_v2_features(in));
    EXPECT_EQ(c.trainable, test::m1_trainable(in));
    EXPECT_EQ(c.total, c.frozen + c.trainable);
  }
  // The seed claims 3.4M; the architecture it describes has ~10M (see SPEC.md).
  const auto c = count_params(*create_model("mobilenet-aspp-se-unet"));
  EXPECT_GT(c.total, 9'500'000);
  EXPECT_LT(c.total, 10'500'000);
  // torchvision's features with a 3-channel stem: 2,223,872 (= smp's frozen encoder count).
  EXPECT_EQ(test::mobilenet_v2_features(3), 2'223'872);
}

TEST(Zoo, UNetParameterCountsEqualTheLayerFormula) {
  const auto c64 = count_params(*create_model("unet"));
  const auto c32 = count_params(*create_model("unet-32"));
  EXPECT_EQ(c64.total, test::unet(1, 64));
  EXPECT_EQ(c32.total, test::unet(1, 32));
  EXPECT_EQ(c64.trainable, c64.total);
  EXPECT_NEAR(c64.total / 1e6, 31.0, 0.5);
  EXPECT_NEAR(c32.total / 1e6, 7.8, 0.1);
}

TEST(Zoo, EfficientModelsMeetTheirBudgets) {
  EXPECT_LE(count_params(*create_model("efficient-unet")).total, 5'000'000);
  EXPECT_LE(count_params(*create_model("mobilenet-aspp-se-unet-lite")).trainable, 1'300'000);
}

TEST(Zoo, FlopsOfUNetEqualTheConvFormula) {
  const auto s = summarize(create_model("unet-32"), 64, 96);
  EXPECT_DOUBLE_EQ(s.flops, test::unet_flops(1, 32, 64, 96));
  double sum = 0;
  for (const auto& st : s.stages) sum += st.flops;
  EXPECT_DOUBLE_EQ(sum, s.flops);
}

TEST(Zoo, StageParamsPartitionTheModel) {
  for (const auto& name : model_names()) {
    SCOPED_TRACE(name);
    const auto s = summarize(create_model(name), 64, 64);
    int64_t t = 0, f = 0;
    for (const auto& st : s.stages) t += st.params_trainable, f += st.params_frozen;
    EXPECT_EQ(t, s.params_trainable);
    EXPECT_EQ(f, s.params_frozen);
    EXPECT_EQ(s.stages.back().shape, (Shape{1, 1, 64, 64}));
  }
}

TEST(Zoo, EveryModelTakesAnyChannelCountAndNonSquareSizes) {
  torch::NoGradGuard no_grad;
  for (const auto& name : model_names())
    for (int in : {1, 2}) {
      SCOPED_TRACE(name + " in=" + std::to_string(in));
      auto m = create_model(name, in);
      m->eval();
      auto y = m->forward(torch::randn({2, in, 64, 96}));
      EXPECT_EQ(y.sizes().vec(), (Shape{2, 1, 64, 96}));
      EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
    }
}

TEST(Zoo, BadInputsAreRejectedWithClearMessages) {
  auto m = create_model("mobilenet-aspp-se-unet");
  EXPECT_ERROR_CONTAINS(m->forward(torch::zeros({1, 1, 250, 256})), "not a positive multiple of 32");
  EXPECT_ERROR_CONTAINS(m->forward(torch::zeros({1, 1, 250, 256})), "e.g. to 256x256");
  EXPECT_ERROR_CONTAINS(m->forward(torch::zeros({1, 3, 64, 64})), "has 3 channels, the model was built for 1");
  EXPECT_ERROR_CONTAINS(m->forward(torch::zeros({1, 64, 64})), "must be [N, C, H, W]");
  ModelConfig c;
  c.arch = "unet";
  c.options = {{"widht", 16}};
  EXPECT_ERROR_CONTAINS(create_model(c), "unknown option 'widht' (options: width)");
  c.options = {{"width", "wide"}};
  EXPECT_ERROR_CONTAINS(create_model(c), "option 'width' should look like 64");
  c.options = nlohmann::json::object();
  c.in_channels = 0;
  EXPECT_ERROR_CONTAINS(create_model(c), "in_channels must be in [1, 64]");
}

// Gradients reach every trainable parameter and none reaches a frozen one.
TEST(Zoo, GradientsFlowExactlyToTrainableParameters) {
  torch::manual_seed(1);
  for (const auto& name : {"mobilenet-aspp-se-unet", "mobilenet-aspp-se-unet-lite", "efficient-unet", "unet-32"}) {
    SCOPED_TRACE(name);
    auto m = create_model(name);
    m->train();
    // Tiny SE bottlenecks (hidden width 1-2) can start with a dead ReLU that legitimately blocks
    // the gradient; a positive bias keeps them open so this tests the wiring, not the init.
    for (auto& p : m->named_parameters())
      if (p.key().find("fc1.bias") != std::string::npos) torch::NoGradGuard(), p.value().data().fill_(10.0);
    auto y = m->forward(torch::randn({2, 1, 64, 64}));
    (y * torch::randn_like(y)).sum().backward();
    int64_t frozen = 0;
    for (const auto& p : m->named_parameters()) {
      if (p.value().requires_grad()) {
        ASSERT_TRUE(p.value().grad().defined()) << p.key();
        EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
      } else {
        ++frozen;
        EXPECT_FALSE(p.value().grad().defined()) << p.key();
      }
    }
    EXPECT_EQ(frozen > 0, std::string(name).rfind("mobilenet", 0) == 0);
  }
}

TEST(Zoo, FrozenBatchNormStatisticsDoNotChangeInTraining) {
  torch::manual_seed(2);
  auto m = create_model("mobilenet-aspp-se-unet");
  m->train();
  auto snapshot = [&](const std::string& prefix) {
    std::vector<torch::Tensor> out;
    for (const auto& b : m->named_buffers())
      if (b.key().rfind(prefix, 0) == 0 && b.key().find("running_") != std::string::npos) out.push_back(b.value().clone());
    return out;
  };
  const auto enc_before = snapshot("encoder."), enc0_before = snapshot("enc0.");
  ASSERT_FALSE(enc_before.empty());
  EXPECT_FALSE(m->named_modules()["encoder.features.0.1"]->is_training());
  EXPECT_TRUE(m->named_modules()["enc0.1"]->is_training());
  torch::optim::Adam opt(m->parameters(), 1e-3);
  auto loss = m->forward(torch::randn({2, 1, 64, 64}) * 3 + 1).mean();
  loss.backward();
  opt.step();
  const auto enc_after = snapshot("encoder."), enc0_after = snapshot("enc0.");
  for (size_t i = 0; i < enc_before.size(); ++i) EXPECT_TRUE(torch::equal(enc_before[i], enc_after[i]));
  EXPECT_FALSE(torch::equal(enc0_before[0], enc0_after[0]));  // trainable BN does update
}

// "encoder_bn_frozen": the encoder's weights train but its BatchNorm keeps its running statistics
// (small-batch fine-tuning); without it an unfrozen encoder's statistics follow the batches.
TEST(Zoo, EncoderBnFrozenTrainsTheWeightsAndKeepsTheStatistics) {
  for (const bool bn_frozen : {true, false}) {
    torch::manual_seed(2);
    ModelConfig c;
    c.arch = "mobilenet-aspp-se-unet-lite";
    c.options = {{"encoder_frozen", false}, {"encoder_bn_frozen", bn_frozen}};
    auto m = create_model(c);
    m->train();
    auto copy = [&](const std::string& key) { return m->named_buffers().contains(key) ? m->named_buffers()[key].clone()
                                                                                         : m->named_parameters()[key].clone(); };
    const std::string bn = "encoder.features.0.1", conv_weight = "encoder.features.0.0.weight";
    const auto mean_before = copy(bn + ".running_mean"), weight_before = copy(conv_weight);
    EXPECT_EQ(m->named_modules()[bn]->is_training(), !bn_frozen);
    EXPECT_TRUE(m->named_modules()["enc0.1"]->is_training());
    torch::optim::Adam opt(m->parameters(), 1e-3);
    m->forward(torch::randn({2, 1, 64, 64}) * 3 + 1).mean().backward();
    opt.step();
    EXPECT_EQ(torch::equal(mean_before, copy(bn + ".running_mean")), bn_frozen);
    EXPECT_FALSE(torch::equal(weight_before, copy(conv_weight)));  // the weights train either way
  }
}

// Model files written with the option off stay readable by builds from before it (they refuse
// unknown options); on, it is written and read back.
TEST(Zoo, EncoderBnFrozenIsWrittenOnlyWhenOn) {
  auto m = create_model("mobilenet-aspp-se-unet-lite");
  EXPECT_FALSE(m->config().to_json()["options"].contains("encoder_bn_frozen"));
  EXPECT_TRUE(m->config().to_json()["options"].contains("encoder_frozen"));
  ModelConfig c;
  c.arch = "mobilenet-aspp-se-unet-lite";
  c.options = {{"encoder_frozen", false}, {"encoder_bn_frozen", true}};
  const nlohmann::json written = create_model(c)->config().to_json();
  EXPECT_EQ(written["options"]["encoder_bn_frozen"], true);
  auto back = create_model(ModelConfig::from_json(written));
  EXPECT_EQ(back->statistics_frozen_prefixes(), std::vector<std::string>{"encoder."});
  EXPECT_EQ(create_model(ModelConfig::from_json(m->config().to_json()))->config().options, m->config().options);
}

TEST(Blocks, LinearAttentionMatchesANaiveComputation) {
  // out = x + W_out · [softmax_d(Q) · (softmax_N(K)^T · V)] per head, computed with loops.
  torch::manual_seed(3);
  const int64_t c = 8, heads = 2, d = c / heads, h = 2, w = 3, n = h * w;
  LinearAttention att(c, heads);
  auto x = torch::randn({1, c, h, w});
  auto y = att->forward(x);
  auto params = att->named_parameters();
  auto proj = [&](const char* name) { return torch::matmul(params[name].view({-1, c}), x.view({c, n})); };  // [C', N]
  auto q = proj("to_q.weight"), k = proj("to_k.weight"), v = proj("to_v.weight");
  auto mixed = torch::zeros({c, n});
  for (int64_t hd = 0; hd < heads; ++hd) {
    auto qh = q.slice(0, hd * d, (hd + 1) * d).t().softmax(1);  // [N, d], softmax over features
    auto kh = k.slice(0, hd * d, (hd + 1) * d).t().softmax(0);  // [N, d], softmax over positions
    auto vh = v.slice(0, hd * d, (hd + 1) * d).t();             // [N, d]
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < d; ++j) {
        double acc = 0;
        for (int64_t a = 0; a < d; ++a)
          for (int64_t t = 0; t < n; ++t)
            acc += qh[i][a].item<double>() * kh[t][a].item<double>() * vh[t][j].item<double>();
        mixed[hd * d + j][i] = acc;
      }
  }
  auto expected = x.view({c, n}) + torch::matmul(params["to_out.weight"].view({c, c}), mixed) +
                  params["to_out.bias"].view({c, 1});
  EXPECT_TRUE(torch::allclose(y.view({c, n}), expected, 1e-4, 1e-5));
}

TEST(Blocks, SqueezeExciteHiddenWidthFollowsTheSpec) {
  EXPECT_EQ(SqueezeExcite(96)->hidden(), 6);
  EXPECT_EQ(SqueezeExcite(16)->hidden(), 1);
  EXPECT_EQ(SqueezeExcite(8)->hidden(), 1);  // max(1, C/16)
}

// ASPP's rate-12 conv on an 8×7 map: the shortcut (its centre tap as a 1×1 conv) gives the full
// conv's output and gradients, and the off-centre weights get exactly zero gradient.
TEST(Ops, DilatedConvThatReadsOnlyPaddingOffCentreTrainsAsItsCentreTap) {
  torch::manual_seed(3);
  auto opts = torch::nn::Conv2dOptions(8, 6, 3).padding(12).dilation(12).bias(true);
  CountedConv2d conv(opts);
  const auto x = torch::randn({2, 8, 8, 7}, torch::requires_grad());
  ASSERT_TRUE(conv_reads_only_centre_tap(conv->options, x));
  const auto y = conv->forward(x);
  const auto w = conv->weight.detach().clone().requires_grad_(true);
  const auto x_ref = x.detach().clone().requires_grad_(true);
  const auto y_ref = torch::conv2d(x_ref, w, conv->bias.detach(), 1, 12, 12);
  ASSERT_EQ(y.sizes(), y_ref.sizes());
  EXPECT_LT((y - y_ref).abs().max().item<float>(), 1e-5);
  const auto g = torch::randn_like(y);
  y.backward(g);
  y_ref.backward(g);
  EXPECT_LT((x.grad() - x_ref.grad()).abs().max().item<float>(), 1e-5);
  EXPECT_LT((conv->weight.grad() - w.grad()).abs().max().item<float>(), 1e-4);
  auto off_centre = conv->weight.grad().clone();
  off_centre.slice(2, 1, 2).slice(3, 1, 2).zero_();
  EXPECT_EQ(off_centre.abs().max().item<float>(), 0.0f);
}

// The options as a CountedConv2d holds them.
torch::nn::detail::ConvNdOptions<2> conv_options(const torch::nn::Conv2dOptions& o) { return CountedConv2d(o)->options; }

TEST(Ops, CentreTapShortcutOnlyWhereNoOffCentreTapReachesAPixel) {
  const auto o = conv_options(torch::nn::Conv2dOptions(4, 4, 3).padding(12).dilation(12));
  EXPECT_TRUE(conv_reads_only_centre_tap(o, torch::zeros({1, 4, 12, 12})));
  EXPECT_FALSE(conv_reads_only_centre_tap(o, torch::zeros({1, 4, 13, 8}))) << "tap 12 rows down reaches row 12";
  EXPECT_FALSE(conv_reads_only_centre_tap(o, torch::zeros({1, 4, 8, 13})));
  EXPECT_FALSE(conv_reads_only_centre_tap(conv_options(torch::nn::Conv2dOptions(4, 4, 3).padding(12).dilation(12).stride(2)),
                                          torch::zeros({1, 4, 8, 8})));
  const auto plain = conv_options(torch::nn::Conv2dOptions(4, 4, 3).padding(1));  // undilated: only a 1x1 map qualifies
  EXPECT_TRUE(conv_reads_only_centre_tap(plain, torch::zeros({1, 4, 1, 1})));
  EXPECT_FALSE(conv_reads_only_centre_tap(plain, torch::zeros({1, 4, 2, 2})));
  EXPECT_FALSE(conv_reads_only_centre_tap(conv_options(torch::nn::Conv2dOptions(4, 4, 2).padding(6).dilation(12)),
                                          torch::zeros({1, 4, 8, 8})));
  EXPECT_FALSE(conv_reads_only_centre_tap(conv_options(torch::nn::Conv2dOptions(4, 4, 1)), torch::zeros({1, 4, 8, 8})));
}

}  // namespace
}  // namespace leanseg
