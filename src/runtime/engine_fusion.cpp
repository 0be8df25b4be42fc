// Fusion analysis: which nodes a conv takes into itself, which convs run on the Winograd
// kernel, and which concats and DepthToSpaces are never built because their readers read the
// parts. Questions about the simplified graph only; nothing here adds a step.
#include <algorithm>

#include "engine_impl.h"
#include "winograd.h"

namespace leanseg::runtime {

// True when every reader of `value` is a Conv/ConvTranspose reading it as its input.
bool Engine::Impl::only_convs_read(const std::string& value) const {
  int conv_reads = 0;
  for (const auto& n : nodes)
    for (size_t k = 0; k < n.inputs.size(); ++k)
      if (n.inputs[k] == value) {
        if (k != 0 || (n.op != "Conv" && n.op != "ConvTranspose")) return false;
        ++conv_reads;
      }
  return conv_reads > 0 && conv_reads == readers.at(value);
}

const GraphNode* Engine::Impl::sole_reader_node(const std::string& value) const {
  auto r = readers.find(value);
  if (r == readers.end() || r->second != 1) return nullptr;
  for (const auto& n : nodes)
    if (std::find(n.inputs.begin(), n.inputs.end(), value) != n.inputs.end()) return &n;
  return nullptr;
}

// What follows conv node i: [Add(conv, other)] then [activation], each taken into the conv (and
// marked in `fused`) only when it is the sole reader of the value before it.
Engine::Impl::Followers Engine::Impl::fusable_followers(size_t i, const memory::dims& od, std::set<size_t>& fused) {
  Followers f;
  f.out_name = nodes[i].outputs[0];
  auto sole_reader = [&](const std::string& value) -> size_t {
    const GraphNode* r = sole_reader_node(value);
    return r ? static_cast<size_t>(r - nodes.data()) : SIZE_MAX;
  };
  size_t j = sole_reader(f.out_name);
  if (j != SIZE_MAX && nodes[j].op == "Add" && nodes[j].inputs.size() == 2) {
    const std::string& other = nodes[j].inputs[0] == f.out_name ? nodes[j].inputs[1] : nodes[j].inputs[0];
    auto it = value_of.find(other);
    if (it != value_of.end() && !values[it->second].host && values[it->second].md == act_md(od)) {
      f.sum_other = it->second;
      fused.insert(j);
      f.out_name = nodes[j].outputs[0];
      j = sole_reader(f.out_name);
    }
  }
  if (j != SIZE_MAX && activation_of(nodes[j], &f.act)) {
    f.has_act = true;
    fused.insert(j);
    f.out_name = nodes[j].outputs[0];
    f.nonnegative_out = f.act.algorithm != dnnl::algorithm::eltwise_clip || f.act.alpha >= 0;
  }
  return f;
}

// Where the Winograd kernel (winograd.h) pays: fp32 dense 3x3 stride-1 convs with channel counts
// in whole 16-blocks. Measured here against oneDNN's direct kernels (bench_winograd_convs,
// docs/runtime.md): 1.9-2.6x faster on maps of 64x64 and more; on 32x32 1.85x up to 256 -> 256
// channels but only 1.1-1.2x at 512 -> 256, and slower on 16x16, because the transformed
// weights (4x the conv's weights, computed on each call) are read once per block of tiles.
bool Engine::Impl::winograd_applies(const GraphNode& n, const ConvAttributes& attrs, const GraphTensor& w,
                                    const std::vector<int64_t>& in_channels, const memory::dims& out_dims) const {
  if (!options.winograd || !winograd_serves_precision() || n.op != "Conv" || out_dims[0] != 1) return false;
  if (attrs.groups != 1 || w.shape[2] != 3 || w.shape[3] != 3) return false;
  if (attrs.strides != std::vector<int64_t>{1, 1} || attrs.dilations != std::vector<int64_t>{1, 1} ||
      attrs.pads != std::vector<int64_t>{1, 1, 1, 1})
    return false;
  for (int64_t c : in_channels)
    if (!winograd_supports(c, out_dims[1])) return false;
  // It fuses ReLU and clip, not sigmoid (which no 3x3 conv of the zoo is followed by).
  const GraphNode* next = sole_reader_node(n.outputs[0]);
  if (next && next->op == "Add") next = sole_reader_node(next->outputs[0]);
  if (next && next->op == "Sigmoid") return false;
  const int64_t pixels = out_dims[2] * out_dims[3], pairs = w.shape[0] * w.shape[1];
  return pixels >= 64 * 64 || (pixels >= 32 * 32 && pairs <= 256 * 256);
}

// True when `value` (of `dims`) is read only by a channel concat that a Winograd conv reads in
// parts (a U-Net decoder's upsampled half).
bool Engine::Impl::read_by_winograd_concat(const std::string& value, const memory::dims& dims) const {
  if (!options.winograd) return false;
  const GraphNode* concat = sole_reader_node(value);
  const auto convs = concat ? convs_reading_channel_concat(*concat) : std::vector<const GraphNode*>();
  if (convs.empty()) return false;
  std::vector<int64_t> channels;
  for (const auto& in : concat->inputs) {
    auto v = value_of.find(in);
    if (in != value && v == value_of.end()) return false;  // computed later: no decision yet
    channels.push_back(in == value ? dims[1] : values[v->second].dims[1]);
  }
  // Deferred, the value exists for Winograd readers only: every reader must be one.
  for (const GraphNode* conv : convs) {
    const GraphTensor& w = *constants.at(conv->inputs[1]);
    if (w.shape.size() != 4 || !winograd_applies(*conv, conv_attributes(*conv, w.shape), w, channels, {dims[0], w.shape[0], dims[2], dims[3]})) return false;
  }
  return true;
}

// True when a conv that runs on the Winograd kernel reads `value` (of `dims`) as its input: the
// value must then stay f32 in an int8 plan.
bool Engine::Impl::read_by_winograd_conv(const std::string& value, const memory::dims& dims) const {
  for (const auto& n : nodes) {
    if (n.op != "Conv" || n.inputs.empty() || n.inputs[0] != value || !constants.count(n.inputs[1])) continue;
    const GraphTensor& w = *constants.at(n.inputs[1]);
    if (w.shape.size() == 4 && winograd_applies(n, conv_attributes(n, w.shape), w, {dims[1]}, {dims[0], w.shape[0], dims[2], dims[3]})) return true;
  }
  return false;
}

// A channel concat of arena values read only by dense Convs (as their input).
bool Engine::Impl::read_in_parts_by_convs(const GraphNode& concat) const {
  for (const auto& in : concat.inputs) {
    if (deferred_depth_to_space.count(in)) continue;
    auto v = value_of.find(in);
    if (v == value_of.end() || values[v->second].host || values[v->second].dims.size() != 4) return false;
  }
  const auto convs = convs_reading_channel_concat(concat);
  // int8: parts accumulate in an f32 output, which the next conv must quantize again. With one
  // reader that pays (no concat at all); with several, a concat built directly in int8
  // (lower_quantizing_concat) is faster (M1 at 256²: parts 29.9 ms against 24.0 built), unless
  // a reader runs on the fp32 Winograd kernel (winograd_serves_precision), which reads the parts.
  if (options.precision == Precision::I8 && convs.size() > 1) {
    std::vector<int64_t> channels;
    memory::dims dims;
    for (const auto& in : concat.inputs) {
      auto deferred = deferred_depth_to_space.find(in);
      const bool through = deferred != deferred_depth_to_space.end();
      dims = dims_read(through ? deferred->second : value_of.at(in), through);
      channels.push_back(dims[1]);
    }
    return std::any_of(convs.begin(), convs.end(), [&](const GraphNode* c) {
      const GraphTensor& w = *constants.at(c->inputs[1]);
      return w.shape.size() == 4 && winograd_applies(*c, conv_attributes(*c, w.shape), w, channels, {dims[0], w.shape[0], dims[2], dims[3]});
    });
  }
  return !convs.empty();
}

// The dense Convs that are every reader of a channel concat (as their input; a U-Net decoder
// block's first conv and its residual projection), or none. Each runs in parts, so the
// concatenated map (the largest at full resolution) is never built.
std::vector<const GraphNode*> Engine::Impl::convs_reading_channel_concat(const GraphNode& concat) const {
  const int64_t axis = int_attr(concat, "axis", 1);
  if (concat.op != "Concat" || (axis != 1 && axis != -3)) return {};
  const std::string& value = concat.outputs[0];
  auto r = readers.find(value);
  if (r == readers.end() || r->second < 1) return {};
  std::vector<const GraphNode*> convs;
  for (const auto& n : nodes) {
    if (std::find(n.inputs.begin(), n.inputs.end(), value) == n.inputs.end()) continue;
    const bool dense_conv = n.op == "Conv" && n.inputs[0] == value && int_attr(n, "group", 1) == 1 &&
                            constants.count(n.inputs[1]) &&
                            std::count(n.inputs.begin(), n.inputs.end(), value) == 1;
    if (!dense_conv) return {};
    convs.push_back(&n);
  }
  // A graph output (counted in readers, read by no node) needs the concat built.
  if (static_cast<int>(convs.size()) != r->second) return {};
  return convs;
}

}  // namespace leanseg::runtime
