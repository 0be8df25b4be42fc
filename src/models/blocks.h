// Small building blocks shared by the zoo. Each is separately testable, counts its FLOPs
// through the Counted* layers of ops.h, and writes its own inference graph (EmitsGraph,
// defined beside its forward in blocks.cpp).
#pragma once
#include <torch/torch.h>

#include "export_graph.h"
#include "leanseg/ops.h"

namespace leanseg {

enum class Act { None, ReLU, ReLU6 };

// nn::Sequential with a concrete forward(Tensor), so Sequentials can nest (AnyModule cannot
// hold the templated SequentialImpl::forward). Children are named "0", "1", ... as in PyTorch.
class SeqImpl : public torch::nn::SequentialImpl {
 public:
  using torch::nn::SequentialImpl::SequentialImpl;
  torch::Tensor forward(torch::Tensor x) { return torch::nn::SequentialImpl::forward(std::move(x)); }
};
TORCH_MODULE(Seq);

// ReLU6 (torch::nn::ReLU6 for export and module names) whose backward also runs in bfloat16:
// LibTorch 1.13's CPU hardtanh_backward has no bfloat16 kernel, so a bf16 step that trains a
// MobileNetV2 encoder would fail. With gradients to compute on a bfloat16 tensor it clamps
// (same values; autograd's clamp backward is elementwise and takes bfloat16), otherwise it
// runs the in-place hardtanh as before.
class ReLU6Impl : public torch::nn::ReLU6Impl {
 public:
  ReLU6Impl() : torch::nn::ReLU6Impl(torch::nn::ReLU6Options().inplace(true)) {}
  torch::Tensor forward(torch::Tensor x);
};
TORCH_MODULE(ReLU6);

// Conv → BatchNorm → activation as a Sequential with children "0", "1"(, "2"), the same
// layout as torchvision's Conv2dNormActivation so pretrained keys map one to one.
Seq conv_bn_act(int64_t in, int64_t out, int64_t k, int64_t stride = 1,
                                  int64_t groups = 1, int64_t dilation = 1, Act act = Act::ReLU);

// Depthwise k×k (dilated) conv+BN+act, then pointwise 1×1 conv+BN+act.
Seq separable_conv_bn_act(int64_t in, int64_t out, int64_t k = 3,
                                            int64_t dilation = 1, Act act = Act::ReLU);

// Squeeze-and-Excitation: GAP → FC(C→max(1,C/r)) → ReLU → FC(→C) → sigmoid → channel scale.
class SqueezeExciteImpl : public torch::nn::Module, public EmitsGraph {
 public:
  SqueezeExciteImpl(int64_t channels, int64_t reduction = 16);
  torch::Tensor forward(const torch::Tensor& x);
  std::string emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const override;
  int64_t hidden() const { return hidden_; }

 private:
  int64_t hidden_;
  CountedLinear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(SqueezeExcite);

// [Conv3x3-BN-ReLU]×2 → SE → + (1×1 conv projection of the input if channels differ).
// With separable=true both 3×3 convs are depthwise separable (the -lite decoder).
class ResidualBlockSEImpl : public torch::nn::Module, public EmitsGraph {
 public:
  ResidualBlockSEImpl(int64_t in, int64_t out, bool separable = false, int64_t se_reduction = 16);
  torch::Tensor forward(const torch::Tensor& x);
  std::string emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const override;

 private:
  Seq body{nullptr};
  SqueezeExcite se{nullptr};
  CountedConv2d proj{nullptr};
};
TORCH_MODULE(ResidualBlockSE);

// 2× learnable upsampling: ConvTranspose2d(k2, s2). Separable: depthwise transposed conv
// (k2, s2, groups=in) followed by a 1×1 conv.
class UpsampleImpl : public torch::nn::Module, public EmitsGraph {
 public:
  UpsampleImpl(int64_t in, int64_t out, bool separable = false);
  torch::Tensor forward(const torch::Tensor& x);
  std::string emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const override;

 private:
  CountedConvTranspose2d up{nullptr};
  CountedConv2d pointwise{nullptr};
};
TORCH_MODULE(Upsample);

struct AsppOptions {
  int64_t in = 1280, branch = 128, out = 512;
  std::vector<int64_t> rates{6, 12, 18};
  int64_t pool_groups = 32;  // GroupNorm groups of the image-pooling branch
  double dropout = 0.5;
  bool separable = false;     // depthwise separable atrous branches (-lite)
};

// DeepLabv3 ASPP: 1×1 branch, atrous 3×3 branches, image pooling (1×1 + GroupNorm + ReLU,
// broadcast back), concat, 1×1 projection + BN + ReLU + Dropout.
class AsppImpl : public torch::nn::Module, public EmitsGraph {
 public:
  explicit AsppImpl(const AsppOptions& o);
  torch::Tensor forward(const torch::Tensor& x);
  std::string emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const override;

 private:
  torch::nn::ModuleList branches{nullptr};
  CountedConv2d pool_conv{nullptr};
  torch::nn::GroupNorm pool_norm{nullptr};
  Seq project{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(Aspp);

// Bottleneck residual block: 1×1 reduce C→C/r, 3×3 depthwise-separable on C/r, 1×1 expand
// →C, + identity.
class BottleneckBlockImpl : public torch::nn::Module, public EmitsGraph {
 public:
  BottleneckBlockImpl(int64_t channels, int64_t reduction);
  torch::Tensor forward(const torch::Tensor& x);
  std::string emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const override;

 private:
  Seq reduce{nullptr}, spatial{nullptr}, expand{nullptr};
};
TORCH_MODULE(BottleneckBlock);

// Linear attention (Shen et al., "Efficient Attention"): softmax(Q) · (softmax(K)^T · V) with
// Q, K, V from 1×1 convs, softmax(Q) over each head's features, softmax(K) over positions;
// output 1×1 projection + residual. O(N·d²) instead of O(N²·d).
class LinearAttentionImpl : public torch::nn::Module, public EmitsGraph {
 public:
  LinearAttentionImpl(int64_t channels, int64_t heads = 4, int64_t key_dim = 0);
  torch::Tensor forward(const torch::Tensor& x);
  std::string emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const override;
  int64_t heads() const { return heads_; }

 private:
  int64_t heads_, key_dim_, value_dim_;
  CountedConv2d to_q{nullptr}, to_k{nullptr}, to_v{nullptr}, to_out{nullptr};
};
TORCH_MODULE(LinearAttention);

}  // namespace leanseg
