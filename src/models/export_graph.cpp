#include "export_graph.h"

#include "blocks.h"
#include "leanseg/error.h"
#include "leanseg/graph_export.h"

namespace leanseg {
namespace {

using Attr = GraphAttribute;
using Ints = std::vector<int64_t>;
using ConvOptions = torch::nn::detail::ConvNdOptions<2>;  // shared by Conv2d and ConvTranspose2d

Ints ints_of(at::IntArrayRef a) { return a.vec(); }

}  // namespace

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

namespace {

Ints explicit_padding(const ConvOptions& o, const std::string& path) {
  const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
  require(pad != nullptr,
          "graph export: conv '" + path + "' uses 'same'/'valid' padding; only explicit padding is supported");
  require(c10::get_if<torch::enumtype::kZeros>(&o.padding_mode()) != nullptr,
          "graph export: conv '" + path + "' pads with something other than zeros");
  const Ints p = ints_of(*pad);
  return {p[0], p[1], p[0], p[1]};
}

}  // namespace

std::string emit_conv_weights(GraphBuilder& g, const ConvOptions& o, const ConvWeights& cw,
                              const std::string& path, const std::string& x) {
  std::vector<std::string> inputs{x, g.weight(path + ".weight", cw.weight)};
  if (cw.bias.defined()) inputs.push_back(g.weight(path + ".bias", cw.bias));
  return g.node("Conv", path, inputs,
                {Attr::of("kernel_shape", ints_of(o.kernel_size())), Attr::of("strides", ints_of(o.stride())),
                 Attr::of("pads", explicit_padding(o, path)), Attr::of("dilations", ints_of(o.dilation())),
                 Attr::of("group", o.groups())});
}

std::string emit_conv_bn(GraphBuilder& g, const torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl* bn,
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

namespace {

// ReLU6 = 6·HardSigmoid(x; α=1/6, β=0): OpenCV 4.6 parses Clip only in its pre-opset-11 form
// (min/max attributes), which is invalid ONNX for opset >= 11.
std::string emit_relu6(GraphBuilder& g, const std::string& path, const std::string& x) {
  const auto hs = g.node("HardSigmoid", path + "/hard_sigmoid", {x},
                         {Attr::of("alpha", 1.0f / 6.0f), Attr::of("beta", 0.0f)});
  return g.node("Mul", path, {hs, g.scalar(path + ".six", 6.0f)});
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
      y = emit_conv_bn(g, *conv, bn, path + "." + item.key(), y);
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
  if (const auto* conv = dynamic_cast<const torch::nn::Conv2dImpl*>(&m)) return emit_conv_bn(g, *conv, nullptr, path, x);
  if (const auto* up = dynamic_cast<const torch::nn::ConvTranspose2dImpl*>(&m))
    return emit_conv_transpose(g, *up, path, x);
  if (dynamic_cast<const torch::nn::ReLUImpl*>(&m)) return g.node("Relu", path, {x});
  if (dynamic_cast<const torch::nn::ReLU6Impl*>(&m)) return emit_relu6(g, path, x);
  if (dynamic_cast<const torch::nn::DropoutImpl*>(&m)) return x;  // identity in eval mode
  if (dynamic_cast<const torch::nn::BatchNorm2dImpl*>(&m))
    throw Error("graph export: BatchNorm '" + path + "' does not follow a convolution, so it cannot be folded");
  throw Error("graph export: module '" + path + "' (" + m.name() + ") has no graph emitter");
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
