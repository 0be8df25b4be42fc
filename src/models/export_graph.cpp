#include "export_graph.h"

#include "leanseg/error.h"
#include "leanseg/graph_export.h"
#include "mobilenet_v2.h"

namespace leanseg {
namespace {

using Attr = GraphAttribute;
using Ints = std::vector<int64_t>;
using ConvOptions = torch::nn::detail::ConvNdOptions<2>;  // shared by Conv2d and ConvTranspose2d

template <class T>
const T* find_child(const torch::nn::Module& m, const std::string& name) {
  const auto children = m.named_children();
  const auto* item = children.find(name);
  return item ? dynamic_cast<const T*>(item->get()) : nullptr;
}

template <class T>
const T& child(const torch::nn::Module& m, const std::string& path, const std::string& name) {
  const T* c = find_child<T>(m, name);
  require(c != nullptr, "graph export: module '" + path + "' has no child '" + name + "' of the expected type");
  return *c;
}

Ints ints_of(at::IntArrayRef a) { return a.vec(); }

// Convolution weights with an optional following BatchNorm folded in (computed in double):
// W' = W·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β. `bias` is undefined when there is none.
struct ConvWeights {
  torch::Tensor weight, bias;
};

ConvWeights fold_batch_norm(const torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl* bn,
                            const std::string& path) {
  torch::NoGradGuard no_grad;
  auto w = conv.weight.detach().to(torch::kDouble);
  auto b = conv.bias.defined() ? conv.bias.detach().to(torch::kDouble) : torch::Tensor();
  if (!bn) return {w.to(torch::kFloat), b.defined() ? b.to(torch::kFloat) : b};
  require(bn->options.track_running_stats(),
          "graph export: BatchNorm after '" + path + "' has no running statistics to fold");
  const auto mean = bn->running_mean.detach().to(torch::kDouble);
  const auto var = bn->running_var.detach().to(torch::kDouble);
  const auto gamma = bn->options.affine() ? bn->weight.detach().to(torch::kDouble) : torch::ones_like(mean);
  const auto beta = bn->options.affine() ? bn->bias.detach().to(torch::kDouble) : torch::zeros_like(mean);
  const auto scale = gamma / torch::sqrt(var + bn->options.eps());
  w = w * scale.view({-1, 1, 1, 1});
  b = ((b.defined() ? b : torch::zeros_like(mean)) - mean) * scale + beta;
  return {w.to(torch::kFloat), b.to(torch::kFloat)};
}

Ints explicit_padding(const ConvOptions& o, const std::string& path) {
  const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
  require(pad != nullptr,
          "graph export: conv '" + path + "' uses 'same'/'valid' padding; only explicit padding is supported");
  require(c10::get_if<torch::enumtype::kZeros>(&o.padding_mode()) != nullptr,
          "graph export: conv '" + path + "' pads with something other than zeros");
  const Ints p = ints_of(*pad);
  return {p[0], p[1], p[0], p[1]};
}

std::string emit_conv_weights(GraphBuilder& g, const ConvOptions& o, const ConvWeights& cw,
                              const std::string& path, const std::string& x) {
  std::vector<std::string> inputs{x, g.weight(path + ".weight", cw.weight)};
  if (cw.bias.defined()) inputs.push_back(g.weight(path + ".bias", cw.bias));
  return g.node("Conv", path, inputs,
                {Attr::of("kernel_shape", ints_of(o.kernel_size())), Attr::of("strides", ints_of(o.stride())),
                 Attr::of("pads", explicit_padding(o, path)), Attr::of("dilations", ints_of(o.dilation())),
                 Attr::of("group", o.groups())});
}

std::string emit_conv(GraphBuilder& g, const torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl* bn,
                      const std::string& path, const std::string& x) {
  return emit_conv_weights(g, conv.options, fold_batch_norm(conv, bn, path), path, x);
}

std::string emit_conv_transpose(GraphBuilder& g, const torch::nn::ConvTranspose2dImpl& conv, const std::string& path,
                                const std::string& x) {
  const auto& o = conv.options;
  const Ints out_pad = ints_of(o.output_padding());
  require(out_pad[0] == 0 && out_pad[1] == 0, "graph export: transposed conv '" + path + "' has output padding");
  std::vector<std::string> inputs{x, g.weight(path + ".weight", conv.weight)};
  if (conv.bias.defined()) inputs.push_back(g.weight(path + ".bias", conv.bias));
  return g.node("ConvTranspose", path, inputs,
                {Attr::of("kernel_shape", ints_of(o.kernel_size())), Attr::of("strides", ints_of(o.stride())),
                 Attr::of("pads", explicit_padding(o, path)), Attr::of("dilations", ints_of(o.dilation())),
                 Attr::of("group", o.groups())});
}

// A Linear layer applied to pooled [N, C, 1, 1] features is a 1×1 convolution: no Flatten/
// Reshape needed, and the result broadcasts straight back over the feature map.
std::string emit_linear_as_conv(GraphBuilder& g, const torch::nn::LinearImpl& fc, const std::string& path,
                                const std::string& x) {
  const auto w = fc.weight.detach();
  std::vector<std::string> inputs{x, g.weight(path + ".weight", w.view({w.size(0), w.size(1), 1, 1}))};
  if (fc.bias.defined()) inputs.push_back(g.weight(path + ".bias", fc.bias));
  return g.node("Conv", path, inputs, {Attr::of("kernel_shape", Ints{1, 1})});
}

// ReLU6 = 6·HardSigmoid(x; α=1/6, β=0): OpenCV 4.6 parses Clip only in its pre-opset-11 form
// (min/max attributes), which is invalid ONNX for opset >= 11.
std::string emit_relu6(GraphBuilder& g, const std::string& path, const std::string& x) {
  const auto hs = g.node("HardSigmoid", path + "/hard_sigmoid", {x},
                         {Attr::of("alpha", 1.0f / 6.0f), Attr::of("beta", 0.0f)});
  return g.node("Mul", path, {hs, g.scalar(path + ".six", 6.0f)});
}

std::string emit_squeeze_excite(GraphBuilder& g, const SqueezeExciteImpl& se, const std::string& path,
                                const std::string& x) {
  const auto z = g.node("GlobalAveragePool", path + "/pool", {x});
  auto s = emit_linear_as_conv(g, child<torch::nn::LinearImpl>(se, path, "fc1"), path + ".fc1", z);
  s = g.node("Relu", path + "/relu", {s});
  s = emit_linear_as_conv(g, child<torch::nn::LinearImpl>(se, path, "fc2"), path + ".fc2", s);
  s = g.node("Sigmoid", path + "/sigmoid", {s});
  return g.node("Mul", path, {x, s});  // [N, C, H, W] · [N, C, 1, 1]
}

std::string emit_residual_block_se(GraphBuilder& g, const ResidualBlockSEImpl& block, const std::string& path,
                                   const std::string& x) {
  auto y = emit_seq(g, child<SeqImpl>(block, path, "body"), path + ".body", x);
  y = emit_squeeze_excite(g, child<SqueezeExciteImpl>(block, path, "se"), path + ".se", y);
  const auto* proj = find_child<torch::nn::Conv2dImpl>(block, "proj");
  return emit_add(g, path, y, proj ? emit_conv(g, *proj, nullptr, path + ".proj", x) : x);
}

std::string emit_upsample(GraphBuilder& g, const UpsampleImpl& up, const std::string& path, const std::string& x) {
  auto y = emit_conv_transpose(g, child<torch::nn::ConvTranspose2dImpl>(up, path, "up"), path + ".up", x);
  const auto* pointwise = find_child<torch::nn::Conv2dImpl>(up, "pointwise");
  return pointwise ? emit_conv(g, *pointwise, nullptr, path + ".pointwise", y) : y;
}

// y [N, C, H, W] + p [N, C, 1, 1]. OpenCV 4.6 imports a broadcasting Add of two computed
// tensors as its Scale layer in bias mode, which fails for batch > 1; its broadcasting Mul
// works. So p is first broadcast exactly by multiplying with ones shaped like y
// (HardSigmoid with α = 0, β = 1 is 1 everywhere), then added elementwise.
std::string emit_add_per_channel(GraphBuilder& g, const std::string& name, const std::string& y, const std::string& p) {
  const auto ones = g.node("HardSigmoid", name + "/ones", {y}, {Attr::of("alpha", 0.0f), Attr::of("beta", 1.0f)});
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
             {Attr::of("epsilon", static_cast<float>(norm.options.eps()))});
  y = g.node("Reshape", path + "/to_channels", {y, g.ints(path + ".channel_shape", {0, channels, 1, 1})});
  if (!norm.options.affine()) return y;
  const auto gamma = g.weight(path + ".weight", norm.weight.detach().view({channels, 1, 1}));
  const auto beta = g.weight(path + ".bias", norm.bias.detach().view({channels, 1, 1}));
  return g.node("Add", path, {g.node("Mul", path + "/scale", {y, gamma}), beta});
}

// ASPP. The image-pooling branch is constant over H×W, so instead of broadcasting it to H×W
// and concatenating, the 1×1 projection is split by input channels: the pooled part is
// projected at 1×1 and added with broadcasting (a 1×1 conv commutes with the broadcast).
// Exact, cheaper, and needs no Expand to a Shape (which OpenCV 4.6 cannot do for dynamic sizes).
std::string emit_aspp(GraphBuilder& g, const AsppImpl& aspp, const std::string& path, const std::string& x) {
  std::vector<std::string> branches;
  const auto& list = child<torch::nn::ModuleListImpl>(aspp, path, "branches");
  for (const auto& b : list.named_children())
    branches.push_back(emit_module(g, *b.value(), path + ".branches." + b.key(), x));
  const auto& pool_conv = child<torch::nn::Conv2dImpl>(aspp, path, "pool_conv");
  const auto& pool_norm = child<torch::nn::GroupNormImpl>(aspp, path, "pool_norm");
  auto pooled = g.node("GlobalAveragePool", path + "/pool", {x});
  pooled = emit_conv(g, pool_conv, nullptr, path + ".pool_conv", pooled);
  pooled = emit_pooled_group_norm(g, pool_norm, path + ".pool_norm", pooled);
  pooled = g.node("Relu", path + "/pool_relu", {pooled});

  const auto& project = child<SeqImpl>(aspp, path, "project");
  const std::string conv_path = path + ".project.0";
  const auto& conv = child<torch::nn::Conv2dImpl>(project, conv_path, "0");
  require(find_child<torch::nn::ReLUImpl>(project, "2") != nullptr,
          "graph export: '" + path + ".project' should be conv, BatchNorm, ReLU");
  const ConvWeights folded = fold_batch_norm(conv, find_child<torch::nn::BatchNorm2dImpl>(project, "1"), conv_path);
  const int64_t branch_channels = conv.weight.size(1) - pool_conv.weight.size(0);
  const ConvWeights spatial{folded.weight.slice(1, 0, branch_channels), folded.bias};
  const ConvWeights from_pool{folded.weight.slice(1, branch_channels), torch::Tensor()};
  auto y = emit_conv_weights(g, conv.options, spatial, conv_path, emit_concat(g, path + "/concat", branches));
  const auto p = emit_conv_weights(g, conv.options, from_pool, conv_path + "_pooled", pooled);
  y = emit_add_per_channel(g, conv_path + "/add_pooled", y, p);
  return g.node("Relu", path + ".project.2", {y});  // the Dropout that follows is an identity in eval mode
}

std::string emit_bottleneck_block(GraphBuilder& g, const BottleneckBlockImpl& block, const std::string& path,
                                  const std::string& x) {
  auto y = emit_seq(g, child<SeqImpl>(block, path, "reduce"), path + ".reduce", x);
  y = emit_seq(g, child<SeqImpl>(block, path, "spatial"), path + ".spatial", y);
  y = emit_seq(g, child<SeqImpl>(block, path, "expand"), path + ".expand", y);
  return g.node("Relu", path, {emit_add(g, path + "/add", y, x)});
}

// softmax(Q)·(softmax(K)ᵀ·V) per head as 4-D batched MatMuls on [N, heads, ·, H·W] tensors.
// Softmax always runs over the last axis (transposing Q first), where opset < 13 and >= 13
// agree. The result returns to [N, C, H, W] by Reshape to Shape(x).
std::string emit_linear_attention(GraphBuilder& g, const LinearAttentionImpl& att, const std::string& path,
                                  const std::string& x) {
  const auto& to_q = child<torch::nn::Conv2dImpl>(att, path, "to_q");
  const auto& to_v = child<torch::nn::Conv2dImpl>(att, path, "to_v");
  const int64_t heads = att.heads();
  const int64_t key_dim = to_q.weight.size(0) / heads, value_dim = to_v.weight.size(0) / heads;
  // 1×1 conv `conv_name`, split into heads: [N, heads, dim, H·W].
  auto heads_of = [&](const std::string& name, const std::string& conv_name, int64_t dim) {
    const auto& conv = child<torch::nn::Conv2dImpl>(att, path, conv_name);
    const auto y = emit_conv(g, conv, nullptr, path + "." + conv_name, x);
    const auto shape = g.ints(path + "." + name + "_heads_shape", {0, heads, dim, -1});
    return g.node("Reshape", path + "/" + name + "_heads", {y, shape});
  };
  const Attr swap_last = Attr::of("perm", Ints{0, 1, 3, 2});
  const Attr last_axis = Attr::of("axis", int64_t{-1});
  auto q = g.node("Transpose", path + "/q_by_position", {heads_of("q", "to_q", key_dim)}, {swap_last});
  q = g.node("Softmax", path + "/q_softmax", {q}, {last_axis});                            // [N, h, HW, dk]
  const auto k = g.node("Softmax", path + "/k_softmax", {heads_of("k", "to_k", key_dim)}, {last_axis});
  const auto v = g.node("Transpose", path + "/v_by_position", {heads_of("v", "to_v", value_dim)}, {swap_last});
  const auto context = g.node("MatMul", path + "/context", {k, v});                       // [N, h, dk, dv]
  auto out = g.node("MatMul", path + "/attend", {q, context});                            // [N, h, HW, dv]
  out = g.node("Transpose", path + "/by_channel", {out}, {swap_last});                    // [N, h, dv, HW]
  out = g.node("Reshape", path + "/to_image", {out, g.node("Shape", path + "/input_shape", {x})});
  out = emit_conv(g, child<torch::nn::Conv2dImpl>(att, path, "to_out"), nullptr, path + ".to_out", out);
  return emit_add(g, path, x, out);
}

std::string emit_inverted_residual(GraphBuilder& g, const InvertedResidualImpl& block, const std::string& path,
                                   const std::string& x) {
  const auto y = emit_seq(g, child<SeqImpl>(block, path, "conv"), path + ".conv", x);
  return block.use_residual() ? emit_add(g, path, x, y) : y;
}

}  // namespace

GraphBuilder::GraphBuilder(std::string graph_name) { graph_.name = std::move(graph_name); }

std::string GraphBuilder::unique(const std::string& name) {
  std::string candidate = name;
  for (int i = 1; !names_.insert(candidate).second; ++i) candidate = name + "_" + std::to_string(i);
  return candidate;
}

void GraphBuilder::input(GraphValue value) {
  require(names_.insert(value.name).second, "graph '" + graph_.name + "': input name '" + value.name + "' is taken");
  graph_.inputs.push_back(std::move(value));
}

std::string GraphBuilder::node(const std::string& op, const std::string& name, std::vector<std::string> inputs,
                               std::vector<GraphAttribute> attributes) {
  GraphNode n;
  n.op = op;
  n.name = unique(name);
  n.inputs = std::move(inputs);
  n.outputs = {n.name};
  n.attributes = std::move(attributes);
  graph_.nodes.push_back(std::move(n));
  return graph_.nodes.back().name;
}

std::string GraphBuilder::weight(const std::string& name, const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  GraphTensor tensor;
  tensor.name = unique(name);
  tensor.shape = c.sizes().vec();
  tensor.f32.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  graph_.initializers.push_back(std::move(tensor));
  return graph_.initializers.back().name;
}

std::string GraphBuilder::ints(const std::string& name, std::vector<int64_t> values) {
  GraphTensor tensor;
  tensor.name = unique(name);
  tensor.type = TensorType::I64;
  tensor.shape = {static_cast<int64_t>(values.size())};
  tensor.i64 = std::move(values);
  graph_.initializers.push_back(std::move(tensor));
  return graph_.initializers.back().name;
}

std::string GraphBuilder::scalar(const std::string& name, float value) {
  GraphTensor tensor;
  tensor.name = unique(name);
  tensor.f32 = {value};
  graph_.initializers.push_back(std::move(tensor));
  return graph_.initializers.back().name;
}

void GraphBuilder::rename_value(const std::string& from, const std::string& to) {
  require(names_.insert(to).second, "graph '" + graph_.name + "': cannot rename '" + from + "' to '" + to + "': taken");
  for (auto& n : graph_.nodes)
    for (auto* list : {&n.inputs, &n.outputs})
      for (auto& v : *list)
        if (v == from) v = to;
}

std::string emit_seq(GraphBuilder& g, const SeqImpl& seq, const std::string& path, const std::string& x, size_t begin,
                     size_t end) {
  const auto children = seq.named_children();
  end = std::min(end, children.size());
  std::string y = x;
  for (size_t i = begin; i < end; ++i) {
    const auto& item = children[i];
    const auto* conv = dynamic_cast<const torch::nn::Conv2dImpl*>(item.value().get());
    const auto* bn =
        i + 1 < end ? dynamic_cast<const torch::nn::BatchNorm2dImpl*>(children[i + 1].value().get()) : nullptr;
    if (conv && bn) {
      y = emit_conv(g, *conv, bn, path + "." + item.key(), y);
      ++i;  // the BatchNorm is folded into the conv
    } else {
      y = emit_module(g, *item.value(), path + "." + item.key(), y);
    }
  }
  return y;
}

std::string emit_module(GraphBuilder& g, const torch::nn::Module& m, const std::string& path, const std::string& x) {
  if (const auto* self = dynamic_cast<const EmitsGraph*>(&m)) return self->emit_graph(g, path, x);
  if (const auto* seq = dynamic_cast<const SeqImpl*>(&m)) return emit_seq(g, *seq, path, x);
  if (const auto* conv = dynamic_cast<const torch::nn::Conv2dImpl*>(&m)) return emit_conv(g, *conv, nullptr, path, x);
  if (const auto* up = dynamic_cast<const torch::nn::ConvTranspose2dImpl*>(&m))
    return emit_conv_transpose(g, *up, path, x);
  if (dynamic_cast<const torch::nn::ReLUImpl*>(&m)) return g.node("Relu", path, {x});
  if (dynamic_cast<const torch::nn::ReLU6Impl*>(&m)) return emit_relu6(g, path, x);
  if (dynamic_cast<const torch::nn::DropoutImpl*>(&m)) return x;  // identity in eval mode
  if (const auto* b = dynamic_cast<const SqueezeExciteImpl*>(&m)) return emit_squeeze_excite(g, *b, path, x);
  if (const auto* b = dynamic_cast<const ResidualBlockSEImpl*>(&m)) return emit_residual_block_se(g, *b, path, x);
  if (const auto* b = dynamic_cast<const UpsampleImpl*>(&m)) return emit_upsample(g, *b, path, x);
  if (const auto* b = dynamic_cast<const AsppImpl*>(&m)) return emit_aspp(g, *b, path, x);
  if (const auto* b = dynamic_cast<const BottleneckBlockImpl*>(&m)) return emit_bottleneck_block(g, *b, path, x);
  if (const auto* b = dynamic_cast<const LinearAttentionImpl*>(&m)) return emit_linear_attention(g, *b, path, x);
  if (const auto* b = dynamic_cast<const InvertedResidualImpl*>(&m)) return emit_inverted_residual(g, *b, path, x);
  if (dynamic_cast<const torch::nn::BatchNorm2dImpl*>(&m))
    throw Error("graph export: BatchNorm '" + path + "' does not follow a convolution, so it cannot be folded");
  throw Error("graph export: module '" + path + "' (" + m.name() + ") has no graph emitter");
}

std::string emit_decoder_stage(GraphBuilder& g, const DecoderStageImpl& stage, const std::string& path,
                               const std::string& x, const std::string& skip) {
  const auto up = emit_upsample(g, child<UpsampleImpl>(stage, path, "up"), path + ".up", x);
  const auto* skip_se = find_child<SqueezeExciteImpl>(stage, "skip_se");
  const auto s = skip_se ? emit_squeeze_excite(g, *skip_se, path + ".skip_se", skip) : skip;
  const auto* block = find_child<torch::nn::Module>(stage, "block");
  require(block != nullptr, "graph export: decoder stage '" + path + "' has no 'block'");
  return emit_module(g, *block, path + ".block", emit_concat(g, path + "/concat", {up, s}));
}

std::string emit_max_pool2(GraphBuilder& g, const std::string& name, const std::string& x) {
  return g.node("MaxPool", name, {x}, {Attr::of("kernel_shape", Ints{2, 2}), Attr::of("strides", Ints{2, 2})});
}

std::string emit_max_pool(GraphBuilder& g, const std::string& name, const std::string& x, int64_t kernel,
                          int64_t stride, int64_t pad) {
  return g.node("MaxPool", name, {x},
                {Attr::of("kernel_shape", Ints{kernel, kernel}), Attr::of("strides", Ints{stride, stride}),
                 Attr::of("pads", Ints{pad, pad, pad, pad})});
}

std::string emit_conv_bn(GraphBuilder& g, const torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl* bn,
                         const std::string& path, const std::string& x) {
  return emit_conv(g, conv, bn, path, x);
}

std::string emit_concat(GraphBuilder& g, const std::string& name, std::vector<std::string> values) {
  return g.node("Concat", name, std::move(values), {Attr::of("axis", int64_t{1})});
}

std::string emit_add(GraphBuilder& g, const std::string& name, const std::string& a, const std::string& b) {
  return g.node("Add", name, {a, b});
}

Graph model_graph(const SegmentationModelImpl& model, const GraphInputShape& shape) {
  const ModelConfig& config = model.config();
  const int64_t d = model.size_divisor();
  require(shape.height > 0 && shape.width > 0 && shape.height % d == 0 && shape.width % d == 0,
          "graph export of '" + config.arch + "': input size " + std::to_string(shape.height) + "x" +
              std::to_string(shape.width) + " (HxW) is not a positive multiple of " + std::to_string(d));
  auto value = [&](const std::string& name, int64_t channels) {
    GraphValue v{name, {1, channels, shape.height, shape.width}, {"", "", "", ""}};
    if (shape.dynamic_batch) v.shape[0] = -1, v.dim_names[0] = "batch";
    if (shape.dynamic_size) v.shape[2] = v.shape[3] = -1, v.dim_names[2] = "height", v.dim_names[3] = "width";
    return v;
  };
  GraphBuilder g(config.arch);
  g.input(value("image", config.in_channels));
  torch::NoGradGuard no_grad;
  g.rename_value(model.emit_graph(g, "image"), "logits");
  g.graph().outputs.push_back(value("logits", config.output_channels()));
  g.graph().validate();
  return std::move(g.graph());
}

}  // namespace leanseg
