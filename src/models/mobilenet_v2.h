// MobileNetV2 (Sandler et al. 2018) with torchvision's module layout and parameter names, so
// ImageNet weights saved from torchvision load one to one.
#pragma once
#include <torch/torch.h>

#include <string>

#include "blocks.h"
#include "encoder.h"

namespace leanseg {

class SafeTensorsFile;

// torchvision InvertedResidual: child "conv" is a Sequential ([expand 1×1], depthwise 3×3,
// linear 1×1 projection, BN); residual add when stride 1 and in == out.
class InvertedResidualImpl : public torch::nn::Module, public EmitsGraph {
 public:
  InvertedResidualImpl(int64_t in, int64_t out, int64_t stride, int64_t expand_ratio);
  torch::Tensor forward(const torch::Tensor& x);
  std::string emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const override;
  bool use_residual() const { return use_residual_; }

 private:
  bool use_residual_;
  Seq conv{nullptr};
};
TORCH_MODULE(InvertedResidual);

// torchvision `mobilenet_v2().features`: 19 children, [0] stem conv (stride 2), [1..17]
// inverted residual blocks, [18] 1×1 conv to 1280 channels. As an encoder: stages
// features[0:2] [2:4] [4:7] [7:14] [14:19] (16, 24, 32, 96, 1280 channels at /2 .. /32).
class MobileNetV2FeaturesImpl : public EncoderImpl {
 public:
  explicit MobileNetV2FeaturesImpl(int64_t in_channels = 3);
  // Runs children [begin, end).
  torch::Tensor forward_range(torch::Tensor x, size_t begin, size_t end);
  torch::Tensor forward(const torch::Tensor& x) { return forward_range(x, 0, 19); }

  std::vector<int64_t> out_channels() const override { return {16, 24, 32, 96, 1280}; }
  std::vector<int64_t> reductions() const override { return {2, 4, 8, 16, 32}; }
  torch::Tensor forward_stage(size_t i, const torch::Tensor& x) override;
  std::string emit_stage(GraphBuilder& g, const std::string& path, size_t i, const std::string& x) const override;
  std::vector<std::string> stage_prefixes(size_t i) const override;
  // None: the depthwise convs and identity residuals tie nearly every channel (not pruned).
  void channel_groups(ChannelGroupBuilder&, const std::string&) const override {}
  void load_pretrained(const std::string& path, StemInit stem) override;

  Seq features{nullptr};
};
TORCH_MODULE(MobileNetV2Features);

// The full ImageNet classifier (used to prove the weight loading reproduces torchvision).
class MobileNetV2ClassifierImpl : public torch::nn::Module {
 public:
  explicit MobileNetV2ClassifierImpl(int64_t num_classes = 1000);
  torch::Tensor forward(const torch::Tensor& x);
  Seq features{nullptr}, classifier{nullptr};
};
TORCH_MODULE(MobileNetV2Classifier);

// How a 3-channel (RGB) stem kernel becomes a C-channel one.
// mean: every input channel gets mean(R,G,B) (the seed's rule);
// sum:  every channel gets (R+G+B)/C, exact when a grey image is copied to the C channels.
// For C == 3 the RGB kernel is used as is.
enum class StemInit { Mean, Sum };  // declared in encoder.h
StemInit stem_init_from_string(const std::string& s);

// Loads torchvision-named MobileNetV2 weights ("features.*" [, "classifier.*"]) from a
// safetensors file into `module`, whose parameters are named `prefix` + torchvision name.
// Checks every shape and that no tensor is missing; "classifier.*" entries are used only when
// the module has them. Throws Error naming the file and tensor on any mismatch.
void load_mobilenet_v2_weights(torch::nn::Module& module, const std::string& path,
                               const std::string& prefix = "", StemInit stem = StemInit::Mean);

}  // namespace leanseg
