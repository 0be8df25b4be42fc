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

torch::Tensor CountedConv2dImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = torch::nn::Conv2dImpl::forward(x);
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
