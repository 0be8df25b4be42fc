#include "resnet.h"

#include "channel_groups.h"
#include "leanseg/error.h"
#include "mobilenet_v2.h"

namespace leanseg {
namespace {

CountedConv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride) {
  return CountedConv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(false));
}

const std::vector<int64_t>& blocks_per_layer(ResNetDepth depth) {
  static const std::vector<int64_t> r18 = {2, 2, 2, 2}, r34 = {3, 4, 6, 3};
  return depth == ResNetDepth::R18 ? r18 : r34;
}

const TorchvisionLayout& resnet_layout() {
  static const TorchvisionLayout layout{"ResNet", {"conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4."}, {"fc."},
                                        "conv1.weight"};
  return layout;
}

std::string join(const std::string& path, const std::string& name) { return path.empty() ? name : path + "." + name; }

}  // namespace

BasicBlockImpl::BasicBlockImpl(int64_t in, int64_t out, int64_t stride) {
  conv1 = register_module("conv1", conv(in, out, 3, stride));
  bn1 = register_module("bn1", SyncableBatchNorm2d(out));
  conv2 = register_module("conv2", conv(out, out, 3, 1));
  bn2 = register_module("bn2", SyncableBatchNorm2d(out));
  if (stride != 1 || in != out) downsample = register_module("downsample", Seq(conv(in, out, 1, stride), SyncableBatchNorm2d(out)));
}

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x) {
  auto y = torch::relu(bn1(conv1(x)));
  y = bn2(conv2(y));
  return torch::relu(y + (downsample ? downsample->forward(x) : x));
}

// The projection is emitted first, so that when the engine lowers conv2 the other operand of
// the residual Add exists and the Add and ReLU fuse into conv2 (engine_fusion.cpp).
std::string BasicBlockImpl::emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const {
  const std::string identity = downsample ? emit_seq(g, *downsample, path + ".downsample", x) : x;
  auto y = emit_conv_bn(g, *conv1, bn1.get(), path + ".conv1", x);
  y = g.node("Relu", path + "/relu1", {y});
  y = emit_conv_bn(g, *conv2, bn2.get(), path + ".conv2", y);
  return g.node("Relu", path + "/relu", {emit_add(g, path + "/add", y, identity)});
}

ResNetEncoderImpl::ResNetEncoderImpl(ResNetDepth depth, int64_t in_channels) {
  conv1 = register_module("conv1", conv(in_channels, 64, 7, 2));
  bn1 = register_module("bn1", SyncableBatchNorm2d(64));
  int64_t in = 64;
  for (size_t l = 0; l < 4; ++l) {
    const int64_t out = 64 << l;
    torch::nn::Sequential layer;
    for (int64_t b = 0; b < blocks_per_layer(depth)[l]; ++b) {
      layer->push_back(BasicBlock(in, out, b == 0 && l > 0 ? 2 : 1));
      in = out;
    }
    layers[l] = register_module("layer" + std::to_string(l + 1), layer);
  }
}

torch::Tensor ResNetEncoderImpl::forward_stage(size_t i, const torch::Tensor& x) {
  if (i == 0) return torch::relu(bn1(conv1(x)));
  require(i < 5, "ResNet encoder: no stage " + std::to_string(i));
  return layers[i - 1]->forward(i == 1 ? torch::max_pool2d(x, 3, 2, 1) : x);
}

std::string ResNetEncoderImpl::emit_stage(GraphBuilder& g, const std::string& path, size_t i,
                                          const std::string& x) const {
  if (i == 0) return g.node("Relu", join(path, "relu"), {emit_conv_bn(g, *conv1, bn1.get(), join(path, "conv1"), x)});
  require(i < 5, "ResNet encoder: no stage " + std::to_string(i));
  const std::string layer = join(path, "layer" + std::to_string(i));
  std::string y = i == 1 ? emit_max_pool(g, join(path, "maxpool"), x, 3, 2, 1) : x;
  const auto children = layers[i - 1]->named_children();
  for (const auto& block : children) y = emit_module(g, *block.value(), layer + "." + block.key(), y);
  return y;
}

std::vector<std::string> ResNetEncoderImpl::stage_prefixes(size_t i) const {
  if (i == 0) return {"conv1.", "bn1."};
  return {"layer" + std::to_string(i) + "."};
}

// Inside each BasicBlock the channels between conv1 and conv2 are free; its output channels
// are tied to the block's input by the identity residual (or to the decoder by the skip), so
// they are not pruned.
void ResNetEncoderImpl::channel_groups(ChannelGroupBuilder& b, const std::string& path) const {
  for (size_t l = 0; l < 4; ++l)
    for (size_t k = 0; k < layers[l]->size(); ++k) {
      const std::string block = join(path, "layer" + std::to_string(l + 1) + "." + std::to_string(k));
      b.begin(block + ".mid");
      b.conv_out(block + ".conv1", block + ".bn1");
      b.conv_in(block + ".conv2");
      b.end();
    }
}

void ResNetEncoderImpl::load_pretrained(const std::string& path, StemInit stem) {
  load_torchvision_weights(*this, path, resnet_layout(), "", stem);
}

ResNetClassifierImpl::ResNetClassifierImpl(ResNetDepth depth, int64_t num_classes, int64_t in_channels)
    : ResNetEncoderImpl(depth, in_channels) {
  fc = register_module("fc", CountedLinear(512, num_classes));
}

torch::Tensor ResNetClassifierImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = x;
  for (size_t i = 0; i < num_stages(); ++i) y = forward_stage(i, y);
  return fc(y.mean({2, 3}));
}

void load_resnet_weights(torch::nn::Module& module, const std::string& path, const std::string& prefix, StemInit stem) {
  load_torchvision_weights(module, path, resnet_layout(), prefix, stem);
}

}  // namespace leanseg
