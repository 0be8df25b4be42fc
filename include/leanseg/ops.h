// Layers that count their own FLOPs. Every model is built from these so `leanseg info` can
// report exact FLOPs without hooks. Convention (per image, bias and activations ignored):
//   conv:            2 · Hout · Wout · Cout · (Cin / groups) · kh · kw
//   transposed conv: 2 · Hin · Win · Cin · (Cout / groups) · kh · kw
//   linear:          2 · in · out (per row)
//   matmul [n×k]·[k×m]: 2 · n · k · m
#pragma once
#include <torch/torch.h>

namespace leanseg {

// While a FlopScope is alive, the counted layers on this thread add their FLOPs to it.
// Scopes nest; an inner scope's FLOPs are also added to the outer one on destruction.
class FlopScope {
 public:
  FlopScope();
  ~FlopScope();
  FlopScope(const FlopScope&) = delete;
  FlopScope& operator=(const FlopScope&) = delete;
  double flops() const { return flops_; }

 private:
  double flops_ = 0;
  FlopScope* parent_;
  friend void add_flops(double);
};

// Adds to the innermost live FlopScope (no-op when there is none: zero cost in production).
void add_flops(double flops);

// `t` (4-D) with channels-last strides, also where its layout is ambiguous: one channel (a
// grey image, a depthwise or first-layer weight) or a 1×1 kernel. Tensor::contiguous(ChannelsLast)
// returns such a tensor unchanged, NCHW strides and all; LibTorch then suggests NCHW for it, and
// a conv whose input and weight both suggest NCHW computes and returns NCHW. In a MobileNetV2
// encoder (depthwise and 1×1 weights, a one-channel input) that made the whole encoder NCHW
// and every decoder concat mixed.
torch::Tensor to_channels_last(const torch::Tensor& t);
// Every 4-D parameter of `model` to channels-last strides (to_channels_last), in place.
void convert_to_channels_last(torch::nn::Module& model);

// True when every off-centre tap of the conv reads only zero padding on an input of x's size:
// odd kernel, stride 1, "same" zero padding and a dilation at least the map's height and width
// (DeepLab's ASPP rates 12 and 18 on the 8×8 map of a 256² input). Such a conv is exactly its
// centre tap, a 1×1 conv, and CountedConv2d runs it as one (forward and backward; the off-centre
// weights get the zero gradient they would get anyway). FLOPs are still counted for the full
// kernel: the count describes the model, not the shortcut.
bool conv_reads_only_centre_tap(const torch::nn::detail::ConvNdOptions<2>& o, const torch::Tensor& x);

class CountedConv2dImpl : public torch::nn::Conv2dImpl {
 public:
  using torch::nn::Conv2dImpl::Conv2dImpl;
  torch::Tensor forward(const torch::Tensor& x);
};
TORCH_MODULE(CountedConv2d);

class CountedConvTranspose2dImpl : public torch::nn::ConvTranspose2dImpl {
 public:
  using torch::nn::ConvTranspose2dImpl::ConvTranspose2dImpl;
  torch::Tensor forward(const torch::Tensor& x);
};
TORCH_MODULE(CountedConvTranspose2d);

class CountedLinearImpl : public torch::nn::LinearImpl {
 public:
  using torch::nn::LinearImpl::LinearImpl;
  torch::Tensor forward(const torch::Tensor& x);
};
TORCH_MODULE(CountedLinear);

// Batched matmul a[..., n, k] · b[..., k, m] that records 2·n·k·m per batch-1 element.
// `batch` is the leading (image) batch size the FLOPs are divided by.
torch::Tensor counted_matmul(const torch::Tensor& a, const torch::Tensor& b, int64_t batch);

}  // namespace leanseg
