#include "leanseg/quantized_libtorch.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <cmath>
#include <map>
#include <set>
#include <unordered_map>

#include "leanseg/error.h"

namespace leanseg {
namespace {

using Values = std::unordered_map<std::string, torch::Tensor>;

const std::vector<std::pair<std::string, c10::QEngine>>& engine_names() {
  static const std::vector<std::pair<std::string, c10::QEngine>> names = {
      {"onednn", c10::QEngine::ONEDNN}, {"fbgemm", c10::QEngine::FBGEMM}, {"qnnpack", c10::QEngine::QNNPACK}};
  return names;
}

bool supported(c10::QEngine e) {
  const auto& s = at::globalContext().supportedQEngines();
  return std::find(s.begin(), s.end(), e) != s.end();
}

std::pair<std::string, c10::QEngine> select_engine(const std::string& name) {
  std::vector<std::string> available = quantized_engines();
  for (const auto& [n, e] : engine_names()) {
    if ((name == "auto" || name == n) && supported(e)) return {n, e};
  }
  std::string list;
  for (const auto& a : available) list += (list.empty() ? "" : ", ") + a;
  throw Error("quantized engine '" + name + "' is not available in this LibTorch (it has: " +
              (list.empty() ? "none" : list) + "; 'auto' picks the first)");
}

c10::OperatorHandle quantized_op(const char* name, const char* overload) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
}

// Calls a registered operator through the boxed dispatcher (its packed-parameter class has no
// public C++ header in Debian's LibTorch) and returns its single result.
c10::IValue call(const c10::OperatorHandle& op, std::vector<c10::IValue> args) {
  torch::jit::Stack stack(std::make_move_iterator(args.begin()), std::make_move_iterator(args.end()));
  op.callBoxed(&stack);
  return stack.at(0);
}

struct Range {
  float lo = INFINITY, hi = -INFINITY;
  void observe(const torch::Tensor& t) {
    lo = std::min(lo, t.min().item<float>());
    hi = std::max(hi, t.max().item<float>());
  }
};

// Affine u8 parameters of a range that includes 0 (so zero is exact, as PyTorch's observers).
std::pair<double, int64_t> u8_params(const Range& r) {
  const double lo = std::min(0.0f, r.lo), hi = std::max(0.0f, r.hi);
  const double scale = std::max((hi - lo) / 255.0, 1e-8);
  const auto zero_point = static_cast<int64_t>(std::clamp<double>(std::nearbyint(-lo / scale), 0, 255));
  return {scale, zero_point};
}

std::vector<int64_t> ints_attr(const GraphNode& n, const std::string& name, std::vector<int64_t> fallback) {
  const GraphAttribute* a = n.attribute(name);
  return a ? a->ints : fallback;
}
int64_t int_attr(const GraphNode& n, const std::string& name, int64_t fallback) {
  const GraphAttribute* a = n.attribute(name);
  return a ? a->i : fallback;
}
float float_attr(const GraphNode& n, const std::string& name, float fallback) {
  const GraphAttribute* a = n.attribute(name);
  return a ? a->f : fallback;
}

// ONNX pads [top, left, bottom, right] as LibTorch's symmetric padding.
std::vector<int64_t> symmetric_pads(const GraphNode& n) {
  const auto p = ints_attr(n, "pads", {0, 0, 0, 0});
  require(p.size() == 4 && p[0] == p[2] && p[1] == p[3],
          "int8 (LibTorch): node '" + n.name + "' has asymmetric pads, which LibTorch's convolutions do not take");
  return {p[0], p[1]};
}

torch::Tensor onnx_reshape(const torch::Tensor& x, const torch::Tensor& shape_tensor, const GraphNode& n) {
  auto shape = std::vector<int64_t>(shape_tensor.data_ptr<int64_t>(), shape_tensor.data_ptr<int64_t>() + shape_tensor.numel());
  if (!int_attr(n, "allowzero", 0))
    for (size_t i = 0; i < shape.size(); ++i)
      if (shape[i] == 0) shape[i] = x.size(static_cast<int64_t>(i));
  return x.reshape(shape);
}

// One graph node in fp32 (the executor's fallback for every op, and its calibration pass).
std::vector<torch::Tensor> float_op(const GraphNode& n, const std::vector<torch::Tensor>& in) {
  const std::string& t = n.op;
  auto opt_bias = [&](size_t i) { return in.size() > i ? in[i] : torch::Tensor(); };
  if (t == "Conv")
    return {torch::conv2d(in[0], in[1], opt_bias(2), ints_attr(n, "strides", {1, 1}), symmetric_pads(n),
                          ints_attr(n, "dilations", {1, 1}), int_attr(n, "group", 1))};
  if (t == "ConvTranspose")
    return {torch::conv_transpose2d(in[0], in[1], opt_bias(2), ints_attr(n, "strides", {1, 1}), symmetric_pads(n),
                                    ints_attr(n, "output_padding", {0, 0}), int_attr(n, "group", 1),
                                    ints_attr(n, "dilations", {1, 1}))};
  if (t == "Relu") return {torch::relu(in[0])};
  if (t == "Sigmoid") return {torch::sigmoid(in[0])};
  if (t == "HardSigmoid")
    return {torch::clamp(in[0] * float_attr(n, "alpha", 0.2f) + float_attr(n, "beta", 0.5f), 0.0, 1.0)};
  if (t == "Add") return {in[0] + in[1]};
  if (t == "Mul") return {in[0] * in[1]};
  if (t == "Concat") return {torch::cat(in, int_attr(n, "axis", 0))};
  if (t == "MaxPool") {
    const auto k = ints_attr(n, "kernel_shape", {});
    return {torch::max_pool2d(in[0], k, ints_attr(n, "strides", k), symmetric_pads(n), ints_attr(n, "dilations", {1, 1}),
                              int_attr(n, "ceil_mode", 0) != 0)};
  }
  if (t == "GlobalAveragePool") return {in[0].mean({2, 3}, /*keepdim=*/true)};
  if (t == "InstanceNormalization")
    return {torch::instance_norm(in[0], in[1], in[2], {}, {}, true, 0.0, float_attr(n, "epsilon", 1e-5f), false)};
  if (t == "Reshape") return {onnx_reshape(in[0], in[1], n)};
  if (t == "Shape") return {torch::tensor(in[0].sizes().vec(), torch::kLong)};
  if (t == "Transpose") return {in[0].permute(ints_attr(n, "perm", {})).contiguous()};
  if (t == "Softmax") return {torch::softmax(in[0], int_attr(n, "axis", -1))};
  if (t == "MatMul") return {torch::matmul(in[0], in[1])};
  throw Error("int8 (LibTorch): operator " + t + " of node '" + n.name + "' is not supported");
}

torch::Tensor to_torch(const GraphTensor& t) {
  if (t.type == TensorType::I64) return torch::tensor(t.i64, torch::kLong).reshape(t.shape);
  require(t.type == TensorType::F32, "int8 (LibTorch): initializer '" + t.name + "' is not fp32 or int64");
  return torch::tensor(t.f32, torch::kFloat).reshape(t.shape);
}

bool is_scalar(const torch::Tensor& t, float v) {
  return t.defined() && t.numel() == 1 && t.scalar_type() == torch::kFloat && t.item<float>() == v;
}

}  // namespace

std::vector<std::string> quantized_engines() {
  std::vector<std::string> out;
  for (const auto& [n, e] : engine_names())
    if (supported(e)) out.push_back(n);
  return out;
}

// A convolution on the quantized engine, with the ReLU (or ReLU6) that follows it fused in.
// LibTorch 1.13's onednn engine re-lays out a packed weight for the kernel it picks for the
// first input shape, and with 2+ threads fails ("could not create a primitive descriptor for
// a reorder primitive") when a later shape picks another kernel: weights are packed per input
// shape (once each; a model sees one or two sizes).
struct QuantizedConv {
  std::function<c10::IValue()> prepack;
  mutable std::map<std::vector<int64_t>, c10::IValue> packed;  // by input shape
  bool transposed = false, relu = false;
  std::string input, output;  // output: the fused activation's output when fused
  std::string node;           // for error messages

  const c10::IValue& packed_for(const torch::Tensor& x) const {
    auto it = packed.find(x.sizes().vec());
    if (it == packed.end()) it = packed.emplace(x.sizes().vec(), prepack()).first;
    return it->second;
  }
};

struct LibTorchInt8Model::Impl {
  Graph graph;
  Values constants;
  std::map<std::string, Range> ranges;  // every fp32 value seen in calibration
  std::map<size_t, QuantizedConv> convs;  // by node index
  std::set<size_t> fused;                 // activation nodes folded into a quantized conv
  std::string engine_name;
  c10::QEngine engine = c10::QEngine::NoQEngine;
  int float_convs = 0;

  enum class Mode { Float, Calibrate, Int8 };
  torch::Tensor run(const torch::Tensor& image, Mode mode);
  void plan_convolutions();
  torch::Tensor input_u8(const Values& v, const std::string& name) const;
  torch::Tensor run_conv(const QuantizedConv& c, const Values& v) const;
};

namespace {

// node index → nodes reading each value
std::map<std::string, std::vector<size_t>> consumers_of(const Graph& g) {
  std::map<std::string, std::vector<size_t>> c;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& in : g.nodes[i].inputs) c[in].push_back(i);
  return c;
}

}  // namespace

void LibTorchInt8Model::Impl::plan_convolutions() {
  const auto consumers = consumers_of(graph);
  std::set<std::string> graph_outputs;
  for (const auto& o : graph.outputs) graph_outputs.insert(o.name);
  auto single_consumer = [&](const std::string& value) -> const GraphNode* {
    const auto it = consumers.find(value);
    if (graph_outputs.count(value) || it == consumers.end() || it->second.size() != 1) return nullptr;
    return &graph.nodes[it->second[0]];
  };
  auto index_of = [&](const GraphNode* n) { return static_cast<size_t>(n - graph.nodes.data()); };
  at::globalContext().setQEngine(engine);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const GraphNode& n = graph.nodes[i];
    if (n.op != "Conv" && n.op != "ConvTranspose") continue;
    QuantizedConv q;
    q.transposed = n.op == "ConvTranspose";
    q.input = n.inputs[0];
    q.output = n.outputs[0];
    q.node = n.name;
    std::vector<size_t> fused_here;
    if (const GraphNode* a = single_consumer(q.output); a && a->op == "Relu") {
      q.relu = true, q.output = a->outputs[0], fused_here = {index_of(a)};
    } else if (a && a->op == "HardSigmoid" && std::abs(float_attr(*a, "alpha", 0) - 1.0f / 6) < 1e-6f &&
               float_attr(*a, "beta", 1) == 0.0f) {  // ReLU6 = 6·HardSigmoid(x; 1/6, 0): clipped by u8 saturation
      const GraphNode* m = single_consumer(a->outputs[0]);
      const bool times_six = m && m->op == "Mul" && constants.count(m->inputs[1]) && is_scalar(constants.at(m->inputs[1]), 6.0f);
      if (times_six) q.relu = true, q.output = m->outputs[0], fused_here = {index_of(a), index_of(m)};
    }
    const torch::Tensor w = constants.at(n.inputs[1]);
    const torch::Tensor bias = n.inputs.size() > 2 ? constants.at(n.inputs[2]) : torch::Tensor();
    const auto stride = ints_attr(n, "strides", {1, 1}), dilation = ints_attr(n, "dilations", {1, 1});
    const auto pads = symmetric_pads(n);
    const int64_t groups = int_attr(n, "group", 1);
    c10::optional<torch::Tensor> b = bias.defined() ? c10::optional<torch::Tensor>(bias) : c10::nullopt;
    if (q.transposed) {  // per-tensor weights: the engines' per-channel transposed kernels are not uniform
      const double scale = std::max(w.abs().max().item<double>(), 1e-8) / 127.0;
      const auto qw = at::quantize_per_tensor(w, scale, 0, at::kQInt8);
      const auto out_pad = ints_attr(n, "output_padding", {0, 0});
      q.prepack = [=] {
        return call(quantized_op("quantized::conv_transpose2d_prepack", ""), {qw, b, stride, pads, out_pad, dilation, groups});
      };
    } else {
      const auto scales = (w.abs().amax({1, 2, 3}).clamp_min(1e-8) / 127.0).to(torch::kDouble);
      const auto qw = at::quantize_per_channel(w, scales, torch::zeros({w.size(0)}, torch::kLong), 0, at::kQInt8);
      q.prepack = [=] { return call(quantized_op("quantized::conv2d_prepack", ""), {qw, b, stride, pads, dilation, groups}); };
    }
    try {
      q.prepack();
    } catch (const std::exception&) {  // the engine has no kernel for this layer: the conv stays fp32
      ++float_convs;
      continue;
    }
    convs[i] = std::move(q);
    fused.insert(fused_here.begin(), fused_here.end());
  }
}

torch::Tensor LibTorchInt8Model::Impl::input_u8(const Values& v, const std::string& name) const {
  const torch::Tensor& x = v.at(name);
  if (x.is_quantized()) return x;
  const auto [scale, zero_point] = u8_params(ranges.at(name));
  // The quantized kernels work in NHWC: quantizing straight into it saves a reorder both ways.
  const auto layout = x.dim() == 4 ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  // ATen's elementwise ops are vectorised and parallel; quantize_per_tensor in this LibTorch
  // build (no fbgemm) is a scalar loop that cost more than the int8 convolutions themselves.
  // Both round half to even, so the codes are identical.
  const auto codes = x.contiguous(layout).mul(1.0 / scale).round_().add_(zero_point).clamp_(0, 255).to(torch::kByte);
  return at::_make_per_tensor_quantized_tensor(codes, scale, zero_point);
}

// The fp32 values of a quantized tensor, with vectorised ATen ops (see input_u8).
static torch::Tensor dequantize_fast(const torch::Tensor& q) {
  return q.int_repr().to(torch::kFloat).sub_(q.q_zero_point()).mul_(q.q_scale());
}

torch::Tensor LibTorchInt8Model::Impl::run_conv(const QuantizedConv& c, const Values& v) const {
  static const auto conv = quantized_op("quantized::conv2d", "new");
  static const auto conv_relu = quantized_op("quantized::conv2d_relu", "new");
  static const auto conv_t = quantized_op("quantized::conv_transpose2d", "");
  const auto [scale, zero_point] = u8_params(ranges.at(c.output));
  const auto& op = c.transposed ? conv_t : (c.relu ? conv_relu : conv);
  torch::Tensor y;
  try {
    const torch::Tensor x = input_u8(v, c.input);
    y = call(op, {x, c.packed_for(x), scale, zero_point}).toTensor();
  } catch (const c10::Error& e) {
    throw Error("int8 (LibTorch " + engine_name + "): convolution '" + c.node + "' on input " +
                c10::str(v.at(c.input).sizes()) + " failed: " + e.what_without_backtrace());
  } catch (const std::exception& e) {  // oneDNN's own errors (dnnl::error)
    throw Error("int8 (LibTorch " + engine_name + "): convolution '" + c.node + "' on input " +
                c10::str(v.at(c.input).sizes()) + " failed: " + e.what());
  }
  if (c.transposed && c.relu) y = torch::relu(y);
  return y;
}

torch::Tensor LibTorchInt8Model::Impl::run(const torch::Tensor& image, Mode mode) {
  torch::NoGradGuard no_grad;
  if (mode == Mode::Int8) at::globalContext().setQEngine(engine);
  Values v = constants;
  std::map<std::string, torch::Tensor> dequantized;  // a quantized value read by several fp32 ops
  auto float_value = [&](const std::string& name, const torch::Tensor& t) {
    if (!t.is_quantized()) return t;
    auto it = dequantized.find(name);
    if (it == dequantized.end()) it = dequantized.emplace(name, dequantize_fast(t)).first;
    return it->second;
  };
  require(graph.inputs.size() == 1, "int8 (LibTorch): graph '" + graph.name + "' should have one input");
  v[graph.inputs[0].name] = image.to(torch::kFloat).contiguous();
  if (mode == Mode::Calibrate) ranges[graph.inputs[0].name].observe(image);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const GraphNode& n = graph.nodes[i];
    if (mode == Mode::Int8) {
      if (fused.count(i)) continue;
      if (const auto it = convs.find(i); it != convs.end()) {
        v[it->second.output] = run_conv(it->second, v);
        continue;
      }
    }
    std::vector<torch::Tensor> in;
    for (const auto& name : n.inputs) {
      const auto it = v.find(name);
      require(it != v.end(), "int8 (LibTorch): node '" + n.name + "' reads '" + name + "', which is not computed");
      in.push_back(float_value(name, it->second));
    }
    const auto out = float_op(n, in);
    for (size_t k = 0; k < n.outputs.size() && k < out.size(); ++k) {
      if (mode == Mode::Calibrate && out[k].is_floating_point()) ranges[n.outputs[k]].observe(out[k]);
      v[n.outputs[k]] = out[k];
    }
  }
  const torch::Tensor y = v.at(graph.outputs.at(0).name);
  return y.is_quantized() ? dequantize_fast(y) : y;
}

LibTorchInt8Model::LibTorchInt8Model(Graph graph, const std::vector<at::Tensor>& calibration, const std::string& engine)
    : impl_(std::make_unique<Impl>()) {
  require(!calibration.empty(), "int8 (LibTorch): calibration needs at least one input");
  std::tie(impl_->engine_name, impl_->engine) = select_engine(engine);
  graph.validate();
  impl_->graph = std::move(graph);
  for (const auto& t : impl_->graph.initializers) impl_->constants[t.name] = to_torch(t);
  for (const auto& x : calibration) impl_->run(x, Impl::Mode::Calibrate);
  impl_->plan_convolutions();
}

LibTorchInt8Model::~LibTorchInt8Model() = default;
LibTorchInt8Model::LibTorchInt8Model(LibTorchInt8Model&&) noexcept = default;
LibTorchInt8Model& LibTorchInt8Model::operator=(LibTorchInt8Model&&) noexcept = default;

at::Tensor LibTorchInt8Model::forward(const at::Tensor& image) const { return impl_->run(image, Impl::Mode::Int8); }
at::Tensor LibTorchInt8Model::forward_fp32(const at::Tensor& image) const { return impl_->run(image, Impl::Mode::Float); }
const std::string& LibTorchInt8Model::engine() const { return impl_->engine_name; }
int LibTorchInt8Model::quantized_convolutions() const { return static_cast<int>(impl_->convs.size()); }
int LibTorchInt8Model::float_convolutions() const { return impl_->float_convs; }

}  // namespace leanseg
