// ResNet-18/34 encoders (src/models/resnet.*) and the U-Net presets composed over them
// (`unet-resnet18`, `unet-resnet34`): torchvision's parameter counts and names, the classifier
// built from the encoder code against a functional computation written out here from the named
// tensors of a torchvision-named safetensors file, the stage shapes of the U-Net, pretrained
// loading through the model, and a few training steps.
#include "leanseg/error.h"
#include "leanseg/info.h"
#include "leanseg/model_file.h"
#include "leanseg/model.h"
#include "leanseg/safetensors.h"
#include "leanseg/tensor_io.h"
#include "model_test_util.h"
#include "models/encoder.h"
#include "models/mobilenet_v2.h"
#include "models/resnet.h"
#include "param_formula.h"

namespace leanseg {
namespace {

using Shape = std::vector<int64_t>;
using Named = std::map<std::string, torch::Tensor>;

std::vector<int64_t> blocks_of(ResNetDepth d) { return d == ResNetDepth::R18 ? Shape{2, 2, 2, 2} : Shape{3, 4, 6, 3}; }

// torchvision's state dict of resnet18/34 written from its definition: names, shapes and
// random values (BatchNorm statistics away from 0/1 so that they matter).
Named torchvision_state(ResNetDepth depth, int64_t num_classes, uint64_t seed) {
  torch::manual_seed(static_cast<int64_t>(seed));
  Named s;
  auto conv = [&](const std::string& name, int64_t out, int64_t in, int64_t k) {
    s[name + ".weight"] = torch::randn({out, in, k, k}) * std::sqrt(2.0 / static_cast<double>(in * k * k));
  };
  auto bn = [&](const std::string& name, int64_t c) {
    s[name + ".weight"] = torch::rand({c}) + 0.5;
    s[name + ".bias"] = torch::rand({c}) * 0.6 - 0.3;
    s[name + ".running_mean"] = torch::rand({c}) * 0.6 - 0.3;
    s[name + ".running_var"] = torch::rand({c}) * 1.5 + 0.5;
    s[name + ".num_batches_tracked"] = torch::tensor(int64_t{100});
  };
  conv("conv1", 64, 3, 7);
  bn("bn1", 64);
  int64_t in = 64;
  for (int l = 1; l <= 4; ++l) {
    const int64_t out = 64 << (l - 1);
    for (int64_t b = 0; b < blocks_of(depth)[l - 1]; ++b) {
      const std::string p = "layer" + std::to_string(l) + "." + std::to_string(b);
      conv(p + ".conv1", out, in, 3);
      bn(p + ".bn1", out);
      conv(p + ".conv2", out, out, 3);
      bn(p + ".bn2", out);
      if (b == 0 && l > 1) {
        conv(p + ".downsample.0", out, in, 1);
        bn(p + ".downsample.1", out);
      }
      in = out;
    }
  }
  s["fc.weight"] = torch::randn({num_classes, 512}) * 0.05;
  s["fc.bias"] = torch::randn({num_classes}) * 0.1;
  return s;
}

void write_state(const std::string& path, const Named& s) {
  std::vector<std::pair<std::string, torch::Tensor>> list(s.begin(), s.end());
  save_tensors(path, list, {});
}

// ResNet's eval-mode forward from the named tensors alone: functional conv/BN/pool.
torch::Tensor functional_resnet(const Named& s, ResNetDepth depth, const torch::Tensor& x) {
  auto bn = [&](const torch::Tensor& y, const std::string& n) {
    return torch::batch_norm(y, s.at(n + ".weight"), s.at(n + ".bias"), s.at(n + ".running_mean"),
                             s.at(n + ".running_var"), false, 0.1, 1e-5, false);
  };
  auto conv = [&](const torch::Tensor& y, const std::string& n, int64_t stride, int64_t pad) {
    return torch::conv2d(y, s.at(n + ".weight"), {}, stride, pad);
  };
  auto y = torch::relu(bn(conv(x, "conv1", 2, 3), "bn1"));
  y = torch::max_pool2d(y, 3, 2, 1);
  for (int l = 1; l <= 4; ++l)
    for (int64_t b = 0; b < blocks_of(depth)[l - 1]; ++b) {
      const std::string p = "layer" + std::to_string(l) + "." + std::to_string(b);
      const int64_t stride = b == 0 && l > 1 ? 2 : 1;
      auto z = torch::relu(bn(conv(y, p + ".conv1", stride, 1), p + ".bn1"));
      z = bn(conv(z, p + ".conv2", 1, 1), p + ".bn2");
      const auto identity = s.count(p + ".downsample.0.weight") ? bn(conv(y, p + ".downsample.0", stride, 0), p + ".downsample.1") : y;
      y = torch::relu(z + identity);
    }
  return torch::linear(y.mean({2, 3}), s.at("fc.weight"), s.at("fc.bias"));
}

TEST(ResNet, ParameterCountsEqualTorchvision) {
  // torchvision.models.resnet18() / resnet34(): 1000 ImageNet classes.
  EXPECT_EQ(count_params(*ResNetClassifier(ResNetDepth::R18)).total, 11'689'512);
  EXPECT_EQ(count_params(*ResNetClassifier(ResNetDepth::R34)).total, 21'797'672);
  // The encoders alone: without fc (512·1000 + 1000).
  EXPECT_EQ(count_params(*ResNetEncoder(ResNetDepth::R18, 3)).total, 11'689'512 - 513'000);
  EXPECT_EQ(count_params(*ResNetEncoder(ResNetDepth::R34, 3)).total, 21'797'672 - 513'000);
  // A 1-channel stem has a third of the RGB stem's 64·3·7·7 weights.
  EXPECT_EQ(count_params(*ResNetEncoder(ResNetDepth::R18, 1)).total, 11'689'512 - 513'000 - 64 * 2 * 49);
}

// torchvision's model tables list 1.81 and 3.66 GFLOPS (multiply-adds) at 224x224; ops.h counts
// 2 FLOPs per multiply-add and ignores pooling, BN and activations, as torchvision's count does.
TEST(ResNet, FlopsEqualTorchvisionsTable) {
  torch::NoGradGuard no_grad;
  for (auto [depth, gmacs] : {std::pair{ResNetDepth::R18, 1.81}, std::pair{ResNetDepth::R34, 3.66}}) {
    ResNetClassifier net(depth);
    net->eval();
    FlopScope scope;
    net->forward(torch::zeros({1, 3, 224, 224}));
    EXPECT_NEAR(scope.flops() / 2e9, gmacs, 0.005);
  }
}

TEST(ResNet, ParameterNamesAndShapesAreTorchvisions) {
  for (auto depth : {ResNetDepth::R18, ResNetDepth::R34}) {
    const Named expected = torchvision_state(depth, 1000, 1);
    ResNetClassifier net(depth);
    std::map<std::string, Shape> ours;
    for (const auto& [name, t] : state_dict(*net)) ours[name] = t.sizes().vec();
    ASSERT_EQ(ours.size(), expected.size());
    for (const auto& [name, t] : expected) {
      ASSERT_TRUE(ours.count(name)) << name;
      EXPECT_EQ(ours[name], t.sizes().vec()) << name;
    }
  }
}

// The classifier built from the encoder code, loaded from a torchvision-named file, computes the
// logits the functional definition computes from the same tensors.
TEST(ResNet, ClassifierLogitsEqualTheFunctionalDefinition) {
  test::TempDir dir;
  for (auto depth : {ResNetDepth::R18, ResNetDepth::R34}) {
    SCOPED_TRACE(depth == ResNetDepth::R18 ? "resnet18" : "resnet34");
    const Named state = torchvision_state(depth, 10, 5);
    write_state(dir.file("resnet.safetensors"), state);
    ResNetClassifier net(depth, 10);
    load_resnet_weights(*net, dir.file("resnet.safetensors"), "", StemInit::Mean);
    net->eval();
    torch::NoGradGuard no_grad;
    torch::manual_seed(2);
    const auto x = torch::randn({2, 3, 64, 96});
    const auto ours = net->forward(x), reference = functional_resnet(state, depth, x);
    ASSERT_EQ(ours.sizes().vec(), (Shape{2, 10}));
    EXPECT_GT(reference.std().item<double>(), 0.1);  // the logits are not trivially equal
    EXPECT_TRUE(torch::allclose(ours, reference, 1e-4, 1e-4)) << (ours - reference).abs().max().item<double>();
  }
}

TEST(ResNet, BadWeightFilesAreRejectedNamingFileAndTensor) {
  test::TempDir dir;
  ResNetEncoder enc(ResNetDepth::R18, 1);
  Named state = torchvision_state(ResNetDepth::R18, 1000, 3);
  auto load = [&](const Named& s) {
    write_state(dir.file("w.safetensors"), s);
    enc->load_pretrained(dir.file("w.safetensors"), StemInit::Mean);
  };
  Named missing = state;
  missing.erase("layer3.1.bn2.running_var");
  EXPECT_ERROR_CONTAINS(load(missing), "w.safetensors': is missing tensor 'layer3.1.bn2.running_var'");
  Named extra = state;
  extra["layer5.0.conv1.weight"] = torch::zeros({1});
  EXPECT_ERROR_CONTAINS(load(extra), "unexpected tensor 'layer5.0.conv1.weight' (not a torchvision ResNet key)");
  Named wrong = state;
  wrong["layer1.0.conv2.weight"] = torch::zeros({64, 64, 1, 1});
  EXPECT_ERROR_CONTAINS(load(wrong), "tensor 'layer1.0.conv2.weight'");
  Named r34 = torchvision_state(ResNetDepth::R34, 1000, 3);  // layer1.2 has no counterpart in ResNet-18
  EXPECT_ERROR_CONTAINS(load(r34), "has no counterpart");
  EXPECT_ERROR_CONTAINS(enc->load_pretrained(dir.file("none.safetensors"), StemInit::Mean), "none.safetensors");
}

TEST(ResNet, UNetStagesAtSixtyFour) {
  torch::manual_seed(0);
  const auto s = summarize(create_model("unet-resnet18"), 64, 64);
  const std::vector<std::pair<std::string, Shape>> expected = {
      {"enc0", {1, 16, 64, 64}},  {"enc1", {1, 64, 32, 32}},  {"enc2", {1, 64, 16, 16}}, {"enc3", {1, 128, 8, 8}},
      {"enc4", {1, 256, 4, 4}},   {"enc5", {1, 512, 2, 2}},   {"dec5", {1, 256, 4, 4}},  {"dec4", {1, 128, 8, 8}},
      {"dec3", {1, 64, 16, 16}},  {"dec2", {1, 32, 32, 32}},  {"dec1", {1, 16, 64, 64}}, {"head", {1, 1, 64, 64}}};
  ASSERT_EQ(s.stages.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(s.stages[i].name, expected[i].first);
    EXPECT_EQ(s.stages[i].shape, expected[i].second) << expected[i].first;
  }
}

// The U-Net's parameters: the encoder's (torchvision minus fc, 1-channel stem) plus enc0, the
// decoder written out from its layer definition and the head.
TEST(ResNet, UNetParameterCountsEqualTheLayerFormula) {
  using test::conv;
  using test::conv_bn;
  const int64_t skips[5] = {256, 128, 64, 64, 16}, outs[5] = {256, 128, 64, 32, 16};
  int64_t decoder = conv_bn(1, 16, 3), in = 512;
  for (int i = 0; i < 5; ++i) {
    decoder += in * outs[i] * 4 + outs[i];  // ConvTranspose2d k2 with bias
    decoder += conv_bn(outs[i] + skips[i], outs[i], 3) + conv_bn(outs[i], outs[i], 3);
    in = outs[i];
  }
  decoder += conv(16, 1, 1, 1, true);
  const int64_t r18 = 11'689'512 - 513'000 - 64 * 2 * 49, r34 = 21'797'672 - 513'000 - 64 * 2 * 49;
  EXPECT_EQ(count_params(*create_model("unet-resnet18")).total, r18 + decoder);
  EXPECT_EQ(count_params(*create_model("unet-resnet34")).total, r34 + decoder);
}

// --encoder-weights' path: the file's tensors land under "encoder.", the RGB stem averaged.
TEST(ResNet, PretrainedWeightsLoadIntoTheUNetEncoder) {
  test::TempDir dir;
  const Named state = torchvision_state(ResNetDepth::R34, 1000, 4);
  write_state(dir.file("r34.safetensors"), state);
  auto m = create_model("unet-resnet34");
  load_encoder_weights(*m, dir.file("r34.safetensors"));
  const auto params = m->named_parameters();
  EXPECT_TRUE(torch::equal(params["encoder.layer3.5.conv2.weight"], state.at("layer3.5.conv2.weight")));
  EXPECT_TRUE(torch::allclose(params["encoder.conv1.weight"], state.at("conv1.weight").mean(1, true)));
  EXPECT_TRUE(torch::equal(m->named_buffers()["encoder.layer2.0.downsample.1.running_var"],
                           state.at("layer2.0.downsample.1.running_var")));
  EXPECT_TRUE(params["encoder.layer1.0.conv1.weight"].requires_grad());  // not frozen by default
  EXPECT_ERROR_CONTAINS(load_encoder_weights(*create_model("unet-32"), dir.file("r34.safetensors")),
                        "model 'unet-32' has no pretrained encoder");
}

TEST(ResNet, FrozenEncoderGetsNoGradientsAndNoPruningGroups) {
  ModelConfig c;
  c.arch = "unet-resnet18";
  c.options = {{"encoder_frozen", true}};
  auto frozen = create_model(c);
  EXPECT_FALSE(frozen->named_parameters()["encoder.layer4.1.conv2.weight"].requires_grad());
  EXPECT_TRUE(frozen->named_parameters()["dec5.block.0.0.weight"].requires_grad());
  for (const auto& g : frozen->channel_groups()) EXPECT_NE(g.name.rfind("encoder.", 0), 0u) << g.name;
  // Trainable: one group inside each BasicBlock (8 in ResNet-18).
  int encoder_groups = 0;
  for (const auto& g : create_model("unet-resnet18")->channel_groups()) encoder_groups += g.name.rfind("encoder.", 0) == 0;
  EXPECT_EQ(encoder_groups, 8);
}

// A few Adam steps on one batch of discs: the loss falls (the model learns end to end).
TEST(ResNet, UNetTrains) {
  torch::manual_seed(0);
  auto m = create_model("unet-resnet18");
  m->train();
  const auto x = torch::randn({2, 1, 64, 64});
  const auto yy = torch::arange(64).view({64, 1}).expand({64, 64}), xx = torch::arange(64).view({1, 64}).expand({64, 64});
  const auto mask = ((yy - 32) * (yy - 32) + (xx - 32) * (xx - 32) < 200).to(torch::kFloat).expand({2, 1, 64, 64});
  torch::optim::Adam opt(m->parameters(), torch::optim::AdamOptions(1e-3));
  std::vector<double> losses;
  for (int step = 0; step < 6; ++step) {
    opt.zero_grad();
    auto loss = torch::binary_cross_entropy_with_logits(m->forward(x + mask), mask);
    loss.backward();
    opt.step();
    losses.push_back(loss.item<double>());
  }
  EXPECT_LT(losses.back(), 0.7 * losses.front()) << losses.front() << " -> " << losses.back();
}

// Today's presets keep their parameter names and shapes, so their model files still load: the
// fingerprints are FNV-1a 64 of the sorted "name:AxBxC" lines of model files written by
// `leanseg train` built from main at fd857f3, before the encoder registry (binary models, 1 channel).
TEST(EncoderPresets, ExistingPresetsKeepTheirParameterNamesAndShapes) {
  struct Golden {
    const char* arch;
    size_t tensors;
    uint64_t fnv;
  };
  const Golden golden[] = {{"mobilenet-aspp-se-unet", 473, 0xe4dc88ba3342662bull},
                           {"mobilenet-aspp-se-unet-lite", 561, 0xc04cd8e9fec05794ull},
                           {"unet-32", 118, 0xf721871024f6353dull},
                           {"efficient-unet", 417, 0x3dbc6b2403468a1full}};
  for (const auto& g : golden) {
    SCOPED_TRACE(g.arch);
    std::map<std::string, Shape> named;
    for (const auto& [name, t] : state_dict(*create_model(g.arch))) named[name] = t.sizes().vec();
    std::string text;
    for (const auto& [name, shape] : named) {
      text += name + ":";
      for (size_t i = 0; i < shape.size(); ++i) text += (i ? "x" : "") + std::to_string(shape[i]);
      text += "\n";
    }
    uint64_t fnv = 0xcbf29ce484222325ull;
    for (unsigned char c : text) fnv = (fnv ^ c) * 0x100000001b3ull;
    EXPECT_EQ(named.size(), g.tensors);
    EXPECT_EQ(fnv, g.fnv);
  }
}

// The command line end to end: `train --model unet-resnet18 --encoder-weights` with a
// torchvision-named file and a frozen encoder keeps the file's weights in the saved model, and
// the model exports for the runtime (the stem's MaxPool included) and to ONNX.
TEST(EncoderPresets, CliTrainsUNetResNet18FromTorchvisionWeightsAndExports) {
  const auto leanseg = [](const std::string& args) { return test::run_cli(args, 1); };
  test::TempDir dir;
  const Named state = torchvision_state(ResNetDepth::R18, 1000, 6);
  write_state(dir.file("r18.safetensors"), state);
  auto r = leanseg("synth worms --out " + dir.file("data") + " -n 4 --size 64x64");
  ASSERT_EQ(r.code, 0) << r.out;
  r = leanseg("train --preset demo --data " + dir.file("data") + " --out " + dir.file("run") +
                    " --model unet-resnet18 --encoder-weights " + dir.file("r18.safetensors") +
                    " --freeze-encoder --epochs 1 --input-size 64 --batch-size 2 --no-progress");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto loaded = load_model(dir.file("run/best.safetensors"));
  EXPECT_EQ(loaded.model->config().arch, "unet-resnet18");
  EXPECT_TRUE(torch::equal(loaded.model->named_parameters()["encoder.layer4.1.conv2.weight"],
                           state.at("layer4.1.conv2.weight")));
  r = leanseg("export --model " + dir.file("run/best.safetensors") + " --format runtime --input-size 64 --out " +
                    dir.file("m.lsr"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("MaxPool 1"), std::string::npos) << r.out;
  r = leanseg("export --model " + dir.file("run/best.safetensors") + " --format onnx --input-size 64 --out " +
                    dir.file("m.onnx"));
  EXPECT_EQ(r.code, 0) << r.out;
}

// The decoder takes every width from the encoder: the upsampling of dec5 reads the last stage,
// each stage's first conv reads its upsampled channels and the skip of the matching stage.
TEST(EncoderPresets, DecoderWidthsComeFromTheEncoder) {
  const std::map<std::string, Shape> widths = {{"unet-mobilenet_v2", {16, 24, 32, 96, 1280}},
                                               {"unet-resnet18", {64, 64, 128, 256, 512}}};
  const Shape dec = {256, 128, 64, 32, 16};
  for (const auto& [arch, w] : widths) {
    SCOPED_TRACE(arch);
    auto params = create_model(arch)->named_parameters();
    EXPECT_EQ(params["dec5.up.up.weight"].size(0), w[4]);
    for (int i = 0; i < 5; ++i) {
      const std::string d = "dec" + std::to_string(5 - i);
      const int64_t skip = i < 4 ? w[static_cast<size_t>(3 - i)] : dec[4];
      EXPECT_EQ(params[d + ".block.0.0.weight"].size(1), dec[static_cast<size_t>(i)] + skip) << d;
    }
  }
}

// A preset's model file loads back into the same architecture with identical output, and a
// `unet-resnet18` file rebuilds its encoder from the saved arch name.
TEST(EncoderPresets, ModelFilesRoundTrip) {
  test::TempDir dir;
  for (const std::string arch : {"mobilenet-aspp-se-unet-lite", "unet-resnet18"}) {
    SCOPED_TRACE(arch);
    auto model = test::random_model(arch);
    save_model(dir.file(arch + ".safetensors"), model, Preprocessing{});
    auto loaded = load_model(dir.file(arch + ".safetensors")).model;
    loaded->eval();
    EXPECT_EQ(loaded->config().arch, arch);
    torch::NoGradGuard no_grad;
    torch::manual_seed(1);
    const auto x = torch::randn({1, 1, 64, 64});
    EXPECT_TRUE(torch::equal(loaded->forward(x), model->forward(x)));
  }
}

}  // namespace
}  // namespace leanseg
