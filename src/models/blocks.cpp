#include "blocks.h"

#include "batch_norm.h"
#include "leanseg/error.h"

// BatchNormImplBase's pretty_print is defined in libtorch_cpu.so but not exported (only the
// final BatchNorm2dImpl's vtable is), and SyncableBatchNorm2dImpl's construction vtables refer to
// it: this is the definition they link to (the text torch::nn::BatchNorm2d prints).
template <>
void torch::nn::BatchNormImplBase<2, torch::nn::BatchNorm2dImpl>::pretty_print(std::ostream& stream) const {
  stream << "torch::nn::BatchNorm2d(" << options.num_features() << ", eps=" << options.eps() << ", momentum=";
  if (options.momentum()) stream << *options.momentum();
  else stream << "None";
  stream << ", affine=" << options.affine() << ", track_running_stats=" << options.track_running_stats() << ")";
}

namespace leanseg {
namespace F = torch::nn::functional;

namespace {
BatchNormSynchroniser& batch_norm_synchroniser() {
  static BatchNormSynchroniser sync;
  return sync;
}
}  // namespace

torch::Tensor SyncableBatchNorm2dImpl::forward(const torch::Tensor& x) {
  const auto& sync = batch_norm_synchroniser();
  if (is_training() && sync) return sync(*this, x);
  return torch::nn::BatchNorm2dImpl::forward(x);
}

BatchNormSynchroniser set_batch_norm_synchroniser(BatchNormSynchroniser sync) {
  std::swap(batch_norm_synchroniser(), sync);
  return sync;
}

Seq conv_bn_act(int64_t in, int64_t out, int64_t k, int64_t stride,
                                  int64_t groups, int64_t dilation, Act act) {
  Seq seq;
  seq->push_back(CountedConv2d(torch::nn::Conv2dOptions(in, out, k)
                                   .stride(stride)
                                   .padding((k - 1) / 2 * dilation)
                                   .dilation(dilation)
                                   .groups(groups)
                                   .bias(false)));
  seq->push_back(SyncableBatchNorm2d(out));
  if (act == Act::ReLU) seq->push_back(torch::nn::ReLU(torch::nn::ReLUOptions().inplace(true)));
  if (act == Act::ReLU6) seq->push_back(torch::nn::ReLU6(torch::nn::ReLU6Options().inplace(true)));
  return seq;
}

Seq separable_conv_bn_act(int64_t in, int64_t out, int64_t k, int64_t dilation, Act act) {
  return Seq(conv_bn_act(in, in, k, 1, in, dilation, act), conv_bn_act(in, out, 1, 1, 1, 1, act));
}

SqueezeExciteImpl::SqueezeExciteImpl(int64_t channels, int64_t reduction)
    : hidden_(std::max<int64_t>(1, channels / reduction)) {
  fc1 = register_module("fc1", CountedLinear(channels, hidden_));
  fc2 = register_module("fc2", CountedLinear(hidden_, channels));
}

torch::Tensor SqueezeExciteImpl::forward(const torch::Tensor& x) {
  auto z = x.mean({2, 3});
  auto s = torch::sigmoid(fc2(torch::relu(fc1(z))));
  return x * s.unsqueeze(-1).unsqueeze(-1);
}

ResidualBlockSEImpl::ResidualBlockSEImpl(int64_t in, int64_t out, bool separable, int64_t se_reduction) {
  if (separable)
    body = Seq(separable_conv_bn_act(in, out), separable_conv_bn_act(out, out));
  else
    body = Seq(conv_bn_act(in, out, 3), conv_bn_act(out, out, 3));
  register_module("body", body);
  se = register_module("se", SqueezeExcite(out, se_reduction));
  if (in != out) proj = register_module("proj", CountedConv2d(torch::nn::Conv2dOptions(in, out, 1)));
}

torch::Tensor ResidualBlockSEImpl::forward(const torch::Tensor& x) {
  auto y = se(body->forward(x));
  return y + (proj ? proj(x) : x);
}

UpsampleImpl::UpsampleImpl(int64_t in, int64_t out, bool separable) {
  if (separable) {
    up = register_module("up", CountedConvTranspose2d(torch::nn::ConvTranspose2dOptions(in, in, 2).stride(2).groups(in)));
    pointwise = register_module("pointwise", CountedConv2d(torch::nn::Conv2dOptions(in, out, 1)));
  } else {
    up = register_module("up", CountedConvTranspose2d(torch::nn::ConvTranspose2dOptions(in, out, 2).stride(2)));
  }
}

torch::Tensor UpsampleImpl::forward(const torch::Tensor& x) {
  auto y = up(x);
  return pointwise ? pointwise(y) : y;
}

AsppImpl::AsppImpl(const AsppOptions& o) {
  require(o.pool_groups >= 1 && o.branch % o.pool_groups == 0, "ASPP: branch channels " + std::to_string(o.branch) +
                                             " not divisible by GroupNorm groups " + std::to_string(o.pool_groups));
  branches = register_module("branches", torch::nn::ModuleList());
  branches->push_back(conv_bn_act(o.in, o.branch, 1));
  for (int64_t rate : o.rates) {
    if (o.separable)
      branches->push_back(separable_conv_bn_act(o.in, o.branch, 3, rate));
    else
      branches->push_back(conv_bn_act(o.in, o.branch, 3, 1, 1, rate));
  }
  pool_conv = register_module("pool_conv", CountedConv2d(torch::nn::Conv2dOptions(o.in, o.branch, 1).bias(false)));
  pool_norm = register_module("pool_norm", torch::nn::GroupNorm(o.pool_groups, o.branch));
  const int64_t concat = o.branch * static_cast<int64_t>(o.rates.size() + 2);
  project = register_module("project", conv_bn_act(concat, o.out, 1));
  dropout = register_module("dropout", torch::nn::Dropout(o.dropout));
}

torch::Tensor AsppImpl::forward(const torch::Tensor& x) {
  std::vector<torch::Tensor> outs;
  for (auto& b : *branches) outs.push_back(b->as<Seq>()->forward(x));
  auto pooled = torch::relu(pool_norm(pool_conv(x.mean({2, 3}, /*keepdim=*/true))));
  outs.push_back(pooled.expand({-1, -1, x.size(2), x.size(3)}));
  return dropout(project->forward(torch::cat(outs, 1)));
}

BottleneckBlockImpl::BottleneckBlockImpl(int64_t channels, int64_t reduction) {
  require(reduction >= 1 && channels % reduction == 0,
          "bottleneck block: channels " + std::to_string(channels) + " not divisible by r=" + std::to_string(reduction));
  const int64_t mid = channels / reduction;
  reduce = register_module("reduce", conv_bn_act(channels, mid, 1));
  spatial = register_module("spatial", separable_conv_bn_act(mid, mid, 3));
  expand = register_module("expand", conv_bn_act(mid, channels, 1, 1, 1, 1, Act::None));
}

torch::Tensor BottleneckBlockImpl::forward(const torch::Tensor& x) {
  return torch::relu(expand->forward(spatial->forward(reduce->forward(x))) + x);
}

LinearAttentionImpl::LinearAttentionImpl(int64_t channels, int64_t heads, int64_t key_dim) : heads_(heads) {
  // Checked before dividing (model configs are validated in the registry; this guards direct use).
  require(heads >= 1 && channels % heads == 0, "linear attention: channels " + std::to_string(channels) +
                                                   " not divisible by heads " + std::to_string(heads));
  key_dim_ = key_dim > 0 ? key_dim : channels / heads;
  value_dim_ = channels / heads;
  to_q = register_module("to_q", CountedConv2d(torch::nn::Conv2dOptions(channels, heads_ * key_dim_, 1).bias(false)));
  to_k = register_module("to_k", CountedConv2d(torch::nn::Conv2dOptions(channels, heads_ * key_dim_, 1).bias(false)));
  to_v = register_module("to_v", CountedConv2d(torch::nn::Conv2dOptions(channels, heads_ * value_dim_, 1).bias(false)));
  to_out = register_module("to_out", CountedConv2d(torch::nn::Conv2dOptions(heads_ * value_dim_, channels, 1)));
}

torch::Tensor LinearAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), h = x.size(2), w = x.size(3), n = h * w;
  // [B, heads, d, N]
  auto q = to_q(x).view({b, heads_, key_dim_, n}).softmax(2);
  auto k = to_k(x).view({b, heads_, key_dim_, n}).softmax(3);
  auto v = to_v(x).view({b, heads_, value_dim_, n});
  auto context = counted_matmul(k, v.transpose(2, 3), b);        // [B, heads, dk, dv]
  auto out = counted_matmul(context.transpose(2, 3), q, b);      // [B, heads, dv, N]
  return x + to_out(out.reshape({b, heads_ * value_dim_, h, w}));
}

}  // namespace leanseg
