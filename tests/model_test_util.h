// Helpers shared by the LibTorch tests that compare an exported model with LibTorch (ONNX export,
// the runtime's reference interpreter and engine) and run the `leanseg` binary.
#pragma once
#include <torch/torch.h>

#include <array>
#include <opencv2/imgproc.hpp>
#include <cstdio>
#include <string>
#include <sys/wait.h>

#include "leanseg/data.h"
#include "leanseg/model.h"
#include "leanseg/model_file.h"
#include "test_util.h"

namespace leanseg::test {

// Weights that keep the signal's scale through depth (He-normal), so the deep parts (ASPP,
// attention, bottleneck) visibly shape the logits instead of fading under the shallow skips;
// and non-trivial BatchNorm statistics and affine parameters (and GroupNorm affine) so that BN
// folding is really exercised: fresh modules have mean 0, var 1, γ 1, β 0.
inline void randomize_weights(torch::nn::Module& model, uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (const auto& m : model.modules()) {
    if (auto* bn = m->as<torch::nn::BatchNorm2dImpl>()) {
      bn->running_mean.uniform_(-0.3, 0.3);
      bn->running_var.uniform_(0.5, 2.0);
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.uniform_(-0.3, 0.3);
    } else if (auto* gn = m->as<torch::nn::GroupNormImpl>()) {
      gn->weight.uniform_(0.5, 1.5);
      gn->bias.uniform_(-0.3, 0.3);
    }
    for (auto& p : m->named_parameters(/*recurse=*/false)) {
      if (p.value().dim() >= 2) torch::nn::init::kaiming_normal_(p.value(), 0.0, torch::kFanIn, torch::kReLU);
      else if (p.key() == "bias" && !m->as<torch::nn::BatchNorm2dImpl>() && !m->as<torch::nn::GroupNormImpl>())
        p.value().uniform_(-0.1, 0.1);
    }
  }
}

// A zoo model by name with randomize_weights(seed 7), in eval mode.
inline SegmentationModel random_model(const std::string& name, int in_channels = 1) {
  auto model = create_model(name, in_channels);
  randomize_weights(*model, 7);
  model->eval();
  return model;
}

// An untrained tiny efficient U-Net for 64x64 inputs with `classes` output classes and the given
// whole-image resizing (stretch | letterbox), saved as a model file. `seed` > 0 randomizes its
// weights (masks then have some foreground); 0 keeps the model's own initialisation.
inline void save_tiny_model(const std::string& path, int classes = 2, const std::string& resize = "stretch",
                            uint64_t seed = 3) {
  ModelConfig cfg;
  cfg.arch = "efficient-unet";
  cfg.num_classes = classes;
  cfg.options = {{"channels", {8, 8, 16, 16, 32, 32}}, {"reduction", 2}, {"attention_heads", 2}};
  Preprocessing pre;
  pre.input_height = pre.input_width = 64;
  pre.resize = resize;
  auto model = create_model(cfg);
  if (seed > 0) randomize_weights(*model, seed);
  save_model(path, model, pre);
}

// max |Δlogit| relative to the range of the reference (LibTorch's) logits.
inline double relative_difference(const torch::Tensor& ours, const torch::Tensor& reference) {
  const double range = (reference.max() - reference.min()).item<double>();
  EXPECT_GT(range, 1e-3) << "degenerate logits: the comparison would mean nothing";
  return (ours - reference).abs().max().item<double>() / range;
}

// Bright discs on noise, mask = disc; each sample its own group.
inline Dataset disc_dataset(int n, int size, uint64_t seed) {
  Dataset d;
  d.kind = "test-discs";
  d.channels = {"gray"};
  cv::RNG rng(seed);
  for (int i = 0; i < n; ++i) {
    Sample s;
    s.id = s.group = "s" + std::to_string(i);
    s.image = cv::Mat(size, size, CV_32FC1);
    rng.fill(s.image, cv::RNG::UNIFORM, 0.0, 0.4);
    s.mask = cv::Mat::zeros(size, size, CV_8UC1);
    const cv::Point c(rng.uniform(size / 4, 3 * size / 4), rng.uniform(size / 4, 3 * size / 4));
    cv::circle(s.mask, c, rng.uniform(size / 8, size / 4), cv::Scalar(1), cv::FILLED);
    s.image.setTo(cv::Scalar(0.8), s.mask);
    d.samples.push_back(s);
  }
  return d;
}

struct CliRun {
  int code;
  std::string out;  // stdout + stderr
};

// Runs a shell command; returns its exit code and output (stdout + stderr).
inline CliRun run_command(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::array<char, 4096> buf{};
  while (p && fgets(buf.data(), buf.size(), p)) out += buf.data();
  const int status = p ? pclose(p) : -1;
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Runs the built `leanseg` binary with `args`; returns its exit code and output.
inline CliRun run_cli(const std::string& args, int threads = 1) {
  return run_command(std::string(LEANSEG_CLI_PATH) + " --threads " + std::to_string(threads) + " " + args);
}

}  // namespace leanseg::test
