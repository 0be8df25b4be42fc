#include "leanseg/ops.h"

namespace leanseg {
namespace {
thread_local FlopScope* t_current_scope = nullptr;
}

FlopScope::FlopScope() : parent_(t_current_scope) { t_current_scope = this; }
FlopScope::~FlopScope() {
  t_current_scope = parent_;
  if (parent_) parent_->flops_ += flops_;
}

void add_flops(double flops) {
  if (t_current_scope) t_current_scope->flops_ += flops;
}

torch::Tensor to_channels_last(const torch::Tensor& t) {
  if (t.dim() != 4 || t.suggest_memory_format() == torch::MemoryFormat::ChannelsLast) return t;
  return torch::empty_like(t, t.options(), torch::MemoryFormat::ChannelsLast).copy_(t);
}

void convert_to_channels_last(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters())
    if (p.dim() == 4) p.set_data(to_channels_last(p.data()));
}

bool conv_reads_only_centre_tap(const torch::nn::detail::ConvNdOptions<2>& o, const torch::Tensor& x) {
  const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
  if (!pad || x.dim() != 4 || !c10::holds_alternative<torch::enumtype::kZeros>(o.padding_mode())) return false;
  for (int d = 0; d < 2; ++d) {
    const int64_t k = o.kernel_size()->at(d), dilation = o.dilation()->at(d), extent = x.size(2 + d);
    if (k % 2 == 0 || o.stride()->at(d) != 1 || (*pad)->at(d) != (k - 1) / 2 * dilation) return false;
    if (k > 1 && dilation < extent) return false;  // the nearest off-centre tap reaches a pixel
  }
  return o.kernel_size()->at(0) * o.kernel_size()->at(1) > 1;
}

torch::Tensor CountedConv2dImpl::forward(const torch::Tensor& x) {
  torch::Tensor y;
  if (conv_reads_only_centre_tap(options, x)) {
    const int64_t cy = options.kernel_size()->at(0) / 2, cx = options.kernel_size()->at(1) / 2;
    const torch::Tensor centre = weight.slice(2, cy, cy + 1).slice(3, cx, cx + 1);
    const std::vector<int64_t> one = {1, 1}, none = {0, 0};
    y = torch::conv2d(x, centre, bias, /*stride=*/one, /*padding=*/none, /*dilation=*/one, options.groups());
  } else {
    y = torch::nn::Conv2dImpl::forward(x);
  }
  if (t_current_scope) {
    const auto& o = options;
    const double k = static_cast<double>(o.kernel_size()->at(0) * o.kernel_size()->at(1));
    add_flops(2.0 * y.size(2) * y.size(3) * y.size(1) * (o.in_channels() / o.groups()) * k);
  }
  return y;
}

namespace {
// A transposed conv whose kernel equals its stride (k = s = r, no padding) writes each input pixel
// to its own r×r output block: the same as a 1×1 conv to out·r² channels followed by
// pixel_shuffle(r). LibTorch 1.13 runs ConvTranspose2d on its slow im2col path, which takes and
// returns NCHW whatever the input's layout; in a channels-last network every such layer then
// costs two layout copies forward and backward and turns the decoder's concat (and the gradient
// sums at it) into mixed-layout work. The 1×1 conv + pixel_shuffle form keeps channels-last
// throughout (oneDNN conv, channels-last pixel_shuffle kernels) and gives the same values.
bool transposed_conv_is_pixel_blocks(const torch::nn::detail::ConvNdOptions<2>& o) {
  const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
  for (int d = 0; d < 2; ++d)
    if (o.kernel_size()->at(d) != o.stride()->at(d) || o.kernel_size()->at(0) != o.kernel_size()->at(1) ||
        o.dilation()->at(d) != 1 || o.output_padding()->at(d) != 0 || !pad || (*pad)->at(d) != 0)
      return false;
  return true;
}

// weight [in, out/g, r, r] → [out·r², in/g, 1, 1] with output channel o·r² + a·r + b, the order
// pixel_shuffle reads; the bias repeats each value r² times.
torch::Tensor conv_transpose_as_pixel_shuffle(const torch::Tensor& x, const torch::Tensor& weight,
                                              const torch::Tensor& bias, int64_t groups) {
  const int64_t in = weight.size(0), out_g = weight.size(1), r = weight.size(2);
  const torch::Tensor w = weight.view({groups, in / groups, out_g, r, r})
                              .permute({0, 2, 3, 4, 1})
                              .reshape({groups * out_g * r * r, in / groups, 1, 1});
  const torch::Tensor b = bias.defined() ? bias.repeat_interleave(r * r) : bias;
  const std::vector<int64_t> one = {1, 1}, none = {0, 0};
  return torch::pixel_shuffle(torch::conv2d(x, w, b, /*stride=*/one, /*padding=*/none, /*dilation=*/one, groups), r);
}
}  // namespace

torch::Tensor CountedConvTranspose2dImpl::forward(const torch::Tensor& x) {
  const bool channels_last = x.dim() == 4 && x.suggest_memory_format() == torch::MemoryFormat::ChannelsLast;
  torch::Tensor y = channels_last && transposed_conv_is_pixel_blocks(options)
                        ? conv_transpose_as_pixel_shuffle(x, weight, bias, options.groups())
                        : torch::nn::ConvTranspose2dImpl::forward(x);
  if (t_current_scope) {
    const auto& o = options;
    const double k = static_cast<double>(o.kernel_size()->at(0) * o.kernel_size()->at(1));
    add_flops(2.0 * x.size(2) * x.size(3) * x.size(1) * (o.out_channels() / o.groups()) * k);
  }
  return y;
}

torch::Tensor CountedLinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = torch::nn::LinearImpl::forward(x);
  if (t_current_scope) {
    // Rows per image: everything but the last dim, divided by the batch (first) dim.
    const double rows = x.dim() > 1 ? static_cast<double>(x.numel() / x.size(-1)) / x.size(0) : 1.0;
    add_flops(2.0 * rows * options.in_features() * options.out_features());
  }
  return y;
}

torch::Tensor counted_matmul(const torch::Tensor& a, const torch::Tensor& b, int64_t batch) {
  torch::Tensor y = torch::matmul(a, b);
  if (t_current_scope) {
    const double products = static_cast<double>(y.numel()) * a.size(-1);
    add_flops(2.0 * products / static_cast<double>(batch));
  }
  return y;
}

}  // namespace leanseg
