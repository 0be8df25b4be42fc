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

torch::Tensor CountedConvTranspose2dImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = torch::nn::ConvTranspose2dImpl::forward(x);
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
