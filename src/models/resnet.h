// ResNet-18/34 (He et al. 2016) with torchvision's module layout and parameter names
// (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, ..., fc), so ImageNet weights saved from
// torchvision load one to one. As a segmentation encoder (smp's ResNet encoder) it gives five
// feature maps: the stem after ReLU (/2, 64 channels) and layer1..layer4 (/4 to /32).
#pragma once
#include <torch/torch.h>

#include "batch_norm.h"
#include "blocks.h"
#include "encoder.h"
#include "export_graph.h"
#include "leanseg/ops.h"

namespace leanseg {

enum class ResNetDepth { R18, R34 };

// torchvision BasicBlock: conv3x3(stride)-BN-ReLU, conv3x3-BN, + identity (or the 1x1-conv-BN
// `downsample` projection when the stride or width changes), ReLU.
class BasicBlockImpl : public torch::nn::Module, public EmitsGraph {
 public:
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);
  std::string emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const override;

 private:
  CountedConv2d conv1{nullptr}, conv2{nullptr};
  SyncableBatchNorm2d bn1{nullptr}, bn2{nullptr};
  Seq downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

class ResNetEncoderImpl : public EncoderImpl {
 public:
  ResNetEncoderImpl(ResNetDepth depth, int64_t in_channels);
  std::vector<int64_t> out_channels() const override { return {64, 64, 128, 256, 512}; }
  std::vector<int64_t> reductions() const override { return {2, 4, 8, 16, 32}; }
  torch::Tensor forward_stage(size_t i, const torch::Tensor& x) override;
  std::string emit_stage(GraphBuilder& g, const std::string& path, size_t i, const std::string& x) const override;
  std::vector<std::string> stage_prefixes(size_t i) const override;
  void channel_groups(ChannelGroupBuilder& b, const std::string& path) const override;
  void load_pretrained(const std::string& path, StemInit stem) override;

 private:
  CountedConv2d conv1{nullptr};
  SyncableBatchNorm2d bn1{nullptr};
  torch::nn::Sequential layers[4] = {nullptr, nullptr, nullptr, nullptr};
};
TORCH_MODULE(ResNetEncoder);

// The ImageNet classifier built from the same encoder code: its five stages → global average
// pool → fc. Parameter names are torchvision's (conv1.weight, ..., fc.weight, fc.bias).
class ResNetClassifierImpl : public ResNetEncoderImpl {
 public:
  explicit ResNetClassifierImpl(ResNetDepth depth, int64_t num_classes = 1000, int64_t in_channels = 3);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  CountedLinear fc{nullptr};
};
TORCH_MODULE(ResNetClassifier);

// Loads torchvision-named ResNet weights (conv1, bn1, layer1..4 [, fc]) into `module`, whose
// tensors are named `prefix` + torchvision name. See load_torchvision_weights.
void load_resnet_weights(torch::nn::Module& module, const std::string& path, const std::string& prefix,
                         StemInit stem);

}  // namespace leanseg
