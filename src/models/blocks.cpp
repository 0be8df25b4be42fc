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

torch::Tensor ReLU6Impl::forward(torch::Tensor x) {
  if (x.scalar_type() == torch::kBFloat16 && x.requires_grad() && torch::GradMode::is_enabled()) return x.clamp(0, 6);
  return torch::nn::ReLU6Impl::forward(std::move(x));
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
  if (act == Act::ReLU6) seq->push_back(ReLU6());
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

std::string SqueezeExciteImpl::emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const {
  const auto z = g.node("GlobalAveragePool", path + "/pool", {x});
  auto s = emit_linear_as_conv(g, *fc1, path + ".fc1", z);
  s = g.node("Relu", path + "/relu", {s});
  s = emit_linear_as_conv(g, *fc2, path + ".fc2", s);
  s = g.node("Sigmoid", path + "/sigmoid", {s});
  return g.node("Mul", path, {x, s});  // [N, C, H, W] · [N, C, 1, 1]
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

std::string ResidualBlockSEImpl::emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const {
  auto y = emit_seq(g, *body, path + ".body", x);
  y = se->emit_graph(g, path + ".se", y);
  return emit_add(g, path, y, proj ? emit_conv_bn(g, *proj, nullptr, path + ".proj", x) : x);
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

std::string UpsampleImpl::emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const {
  const auto y = emit_conv_transpose(g, *up, path + ".up", x);
  return pointwise ? emit_conv_bn(g, *pointwise, nullptr, path + ".pointwise", y) : y;
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
  // GroupNorm in float32 (LibTorch 1.13 has no bfloat16 GroupNorm with float32 affine weights, as
  // under bf16 autocast), back in the conv's type so that the concat below is of one type.
  const auto pooled_conv = pool_conv(x.mean({2, 3}, /*keepdim=*/true));
  auto pooled = torch::relu(pool_norm(pooled_conv.to(torch::kFloat32))).to(pooled_conv.scalar_type());
  // Broadcast in x's layout, so that the concat (and its gradient) stays in one layout.
  auto broadcast = pooled.expand({-1, -1, x.size(2), x.size(3)});
  if (x.suggest_memory_format() == torch::MemoryFormat::ChannelsLast) broadcast = to_channels_last(broadcast);
  outs.push_back(broadcast);
  return dropout(project->forward(torch::cat(outs, 1)));
}

namespace {

// y [N, C, H, W] + p [N, C, 1, 1]. OpenCV 4.6 imports a broadcasting Add of two computed
// tensors as its Scale layer in bias mode, which fails for batch > 1; its broadcasting Mul
// works. So p is first broadcast exactly by multiplying with ones shaped like y
// (HardSigmoid with α = 0, β = 1 is 1 everywhere), then added elementwise.
std::string emit_add_per_channel(GraphBuilder& g, const std::string& name, const std::string& y, const std::string& p) {
  const auto ones = g.node("HardSigmoid", name + "/ones", {y},
                           {GraphAttribute::of("alpha", 0.0f), GraphAttribute::of("beta", 1.0f)});
  const auto broadcast = g.node("Mul", name + "/broadcast", {ones, p});
  return g.node("Add", name, {y, broadcast});
}

// GroupNorm of pooled [N, C, 1, 1] features: reshape to [N, G, C/G, 1], InstanceNormalization
// (unit scale, zero bias) normalises each group, reshape back, then the per-channel affine.
// OpenCV 4.6 has no GroupNormalization (and ONNX only from opset 18).
std::string emit_pooled_group_norm(GraphBuilder& g, const torch::nn::GroupNormImpl& norm, const std::string& path,
                                   const std::string& x) {
  const int64_t groups = norm.options.num_groups(), channels = norm.options.num_channels();
  const auto group_shape = g.ints(path + ".group_shape", {0, groups, channels / groups, 1});
  auto y = g.node("Reshape", path + "/to_groups", {x, group_shape});
  const auto unit_scale = g.weight(path + ".unit_scale", torch::ones({groups}));
  const auto zero_bias = g.weight(path + ".zero_bias", torch::zeros({groups}));
  y = g.node("InstanceNormalization", path + "/normalize", {y, unit_scale, zero_bias},
             {GraphAttribute::of("epsilon", static_cast<float>(norm.options.eps()))});
  y = g.node("Reshape", path + "/to_channels", {y, g.ints(path + ".channel_shape", {0, channels, 1, 1})});
  if (!norm.options.affine()) return y;
  const auto gamma = g.weight(path + ".weight", norm.weight.detach().view({channels, 1, 1}));
  const auto beta = g.weight(path + ".bias", norm.bias.detach().view({channels, 1, 1}));
  return g.node("Add", path, {g.node("Mul", path + "/scale", {y, gamma}), beta});
}

}  // namespace

// The image-pooling branch is constant over H×W, so instead of broadcasting it to H×W and
// concatenating, the 1×1 projection is split by input channels: the pooled part is projected at
// 1×1 and added with broadcasting (a 1×1 conv commutes with the broadcast). Exact, cheaper, and
// needs no Expand to a Shape (which OpenCV 4.6 cannot do for dynamic sizes).
std::string AsppImpl::emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const {
  std::vector<std::string> outs;
  for (size_t i = 0; i < branches->size(); ++i)
    outs.push_back(emit_module(g, *branches->ptr(i), path + ".branches." + std::to_string(i), x));
  auto pooled = g.node("GlobalAveragePool", path + "/pool", {x});
  pooled = emit_conv_bn(g, *pool_conv, nullptr, path + ".pool_conv", pooled);
  pooled = emit_pooled_group_norm(g, *pool_norm, path + ".pool_norm", pooled);
  pooled = g.node("Relu", path + "/pool_relu", {pooled});

  // project = conv_bn_act(…, 1): children "0" conv, "1" BatchNorm, "2" ReLU
  const std::string conv_path = path + ".project.0";
  const auto conv_module = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(project->ptr(0));
  const auto norm = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(project->ptr(1));
  require(conv_module && norm, "graph export: '" + path + ".project' should be conv, BatchNorm, ReLU");
  const auto& conv = *conv_module;
  const ConvWeights folded = fold_batch_norm(conv, norm.get(), conv_path);
  const int64_t branch_channels = conv.weight.size(1) - pool_conv->weight.size(0);
  const ConvWeights spatial{folded.weight.slice(1, 0, branch_channels), folded.bias};
  const ConvWeights from_pool{folded.weight.slice(1, branch_channels), torch::Tensor()};
  auto y = emit_conv_weights(g, conv.options, spatial, conv_path, emit_concat(g, path + "/concat", outs));
  const auto p = emit_conv_weights(g, conv.options, from_pool, conv_path + "_pooled", pooled);
  y = emit_add_per_channel(g, conv_path + "/add_pooled", y, p);
  return g.node("Relu", path + ".project.2", {y});  // the Dropout that follows is an identity in eval mode
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

std::string BottleneckBlockImpl::emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const {
  auto y = emit_seq(g, *reduce, path + ".reduce", x);
  y = emit_seq(g, *spatial, path + ".spatial", y);
  y = emit_seq(g, *expand, path + ".expand", y);
  return g.node("Relu", path, {emit_add(g, path + "/add", y, x)});
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

// softmax(Q)·(softmax(K)ᵀ·V) per head as 4-D batched MatMuls on [N, heads, ·, H·W] tensors.
// Softmax always runs over the last axis (transposing Q first), where opset < 13 and >= 13
// agree. The result returns to [N, C, H, W] by Reshape to Shape(x).
std::string LinearAttentionImpl::emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const {
  // 1×1 conv `conv`, split into heads: [N, heads, dim, H·W].
  auto heads_of = [&](const std::string& name, const CountedConv2d& conv, int64_t dim) {
    const auto y = emit_conv_bn(g, *conv, nullptr, path + ".to_" + name, x);
    const auto shape = g.ints(path + "." + name + "_heads_shape", {0, heads_, dim, -1});
    return g.node("Reshape", path + "/" + name + "_heads", {y, shape});
  };
  const auto swap_last = GraphAttribute::of("perm", std::vector<int64_t>{0, 1, 3, 2});
  const auto last_axis = GraphAttribute::of("axis", int64_t{-1});
  auto q = g.node("Transpose", path + "/q_by_position", {heads_of("q", to_q, key_dim_)}, {swap_last});
  q = g.node("Softmax", path + "/q_softmax", {q}, {last_axis});                            // [N, h, HW, dk]
  const auto k = g.node("Softmax", path + "/k_softmax", {heads_of("k", to_k, key_dim_)}, {last_axis});
  const auto v = g.node("Transpose", path + "/v_by_position", {heads_of("v", to_v, value_dim_)}, {swap_last});
  const auto context = g.node("MatMul", path + "/context", {k, v});                       // [N, h, dk, dv]
  auto out = g.node("MatMul", path + "/attend", {q, context});                            // [N, h, HW, dv]
  out = g.node("Transpose", path + "/by_channel", {out}, {swap_last});                    // [N, h, dv, HW]
  out = g.node("Reshape", path + "/to_image", {out, g.node("Shape", path + "/input_shape", {x})});
  out = emit_conv_bn(g, *to_out, nullptr, path + ".to_out", out);
  return emit_add(g, path, x, out);
}

}  // namespace leanseg
