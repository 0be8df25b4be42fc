#include "io/runtime_file_checks.h"

#include <cmath>
#include <set>

#include "io/bit_pack.h"
#include "leanseg/error.h"
#include "leanseg/limits.h"

namespace leanseg {
namespace {

using runtime_file::kind_name;
using runtime_file::shape_text;

// --- checks shared by the writer and the reader ------------------------------------------------

// Every node input that no graph input or node output defines must be an initializer, and every
// initializer must be read by a node (or be a graph output): a file whose tensors and graph
// disagree was written by something else or damaged.
void check_initializers_match_graph(const Graph& g, const std::string& where) {
  std::set<std::string> computed, used, stored;
  for (const auto& v : g.inputs) computed.insert(v.name);
  for (const auto& n : g.nodes) computed.insert(n.outputs.begin(), n.outputs.end());
  for (const auto& t : g.initializers) stored.insert(t.name);
  for (const auto& n : g.nodes)
    for (const auto& in : n.inputs) {
      if (in.empty()) continue;
      used.insert(in);
      require(computed.count(in) || stored.count(in),
              where + ": " + n.op + " node '" + n.name + "' reads '" + in +
                  "', which is no graph input, node output or tensor of the file (missing initializer)");
    }
  for (const auto& v : g.outputs) used.insert(v.name);
  for (const auto& t : g.initializers)
    require(used.count(t.name), where + ": tensor '" + t.name + "' is not used by the graph");
}

const GraphTensor* initializer_input(const Graph& g, const GraphNode& n, size_t i) {
  return i < n.inputs.size() ? g.initializer(n.inputs[i]) : nullptr;
}

// The constant inputs the engine relies on: convolution weights and biases, Reshape's shape.
void check_initializer_uses(const Graph& g, const std::string& where) {
  for (const auto& n : g.nodes) {
    const std::string who = where + ": " + n.op + " node '" + n.name + "'";
    if (n.op == "Conv" || n.op == "ConvTranspose") {
      const GraphTensor* w = initializer_input(g, n, 1);
      require(w != nullptr, who + ": the weight (input 2) must be an initializer");
      require(w->type == TensorType::F32 && w->shape.size() == 4,
              who + ": weight '" + w->name + "' should be a 4-D F32 tensor, got shape " + shape_text(w->shape));
      const GraphAttribute* group = n.attribute("group");
      const int64_t groups = group ? group->i : 1;
      const int64_t out_channels = n.op == "Conv" ? w->shape[0] : w->shape[1] * groups;
      if (const GraphTensor* b = initializer_input(g, n, 2))
        require(b->type == TensorType::F32 && b->shape == std::vector<int64_t>{out_channels},
                who + ": bias '" + b->name + "' should be F32 of shape [" + std::to_string(out_channels) +
                    "], got " + shape_text(b->shape));
    } else if (n.op == "Reshape") {
      if (const GraphTensor* s = initializer_input(g, n, 1))
        require(s->type == TensorType::I64 && s->shape.size() == 1,
                who + ": shape '" + s->name + "' should be a 1-D I64 tensor, got shape " + shape_text(s->shape));
    }
  }
}

// --- limits the engine relies on --------------------------------------------------------------

using Kind = GraphAttribute::Kind;

// Range of an attribute of an operator. Ints attributes have `count` values, each in [lo, hi];
// lo == hi marks a value the engine does not implement otherwise (it would silently ignore it).
struct AttributeRule {
  const char* op;
  const char* name;
  Kind kind;
  size_t count;
  int64_t lo, hi;
};

const AttributeRule kAttributeRules[] = {
    {"Conv", "group", Kind::Int, 1, 1, kMaxChannels},
    {"Conv", "kernel_shape", Kind::Ints, 2, 1, kMaxImageSide},
    {"Conv", "strides", Kind::Ints, 2, 1, kMaxImageSide},
    {"Conv", "dilations", Kind::Ints, 2, 1, kMaxImageSide},
    {"Conv", "pads", Kind::Ints, 4, 0, kMaxImageSide},
    {"ConvTranspose", "group", Kind::Int, 1, 1, kMaxChannels},
    {"ConvTranspose", "kernel_shape", Kind::Ints, 2, 1, kMaxImageSide},
    {"ConvTranspose", "strides", Kind::Ints, 2, 1, kMaxImageSide},
    {"ConvTranspose", "dilations", Kind::Ints, 2, 1, kMaxImageSide},
    {"ConvTranspose", "pads", Kind::Ints, 4, 0, kMaxImageSide},
    {"ConvTranspose", "output_padding", Kind::Ints, 2, 0, 0},
    {"MaxPool", "kernel_shape", Kind::Ints, 2, 1, kMaxImageSide},
    {"MaxPool", "strides", Kind::Ints, 2, 1, kMaxImageSide},
    {"MaxPool", "pads", Kind::Ints, 4, 0, kMaxImageSide},
    {"MaxPool", "dilations", Kind::Ints, 2, 1, 1},
    {"MaxPool", "ceil_mode", Kind::Int, 1, 0, 0},
    {"MaxPool", "storage_order", Kind::Int, 1, 0, 0},
    {"Concat", "axis", Kind::Int, 1, -4, 3},  // the engine's image tensors have 4 axes
};

void check_attribute(const GraphAttribute& a, const AttributeRule& r, const std::string& who) {
  const std::string what = who + ": attribute '" + a.name + "'";
  require(a.kind == r.kind, what + " should be " + kind_name(r.kind) + ", got " + kind_name(a.kind));
  const std::vector<int64_t> values = a.kind == Kind::Int ? std::vector<int64_t>{a.i} : a.ints;
  const std::string shown = a.kind == Kind::Int ? std::to_string(a.i) : shape_text(a.ints);
  require(values.size() == r.count, what + " is " + shown + ", should have " + std::to_string(r.count) + " values");
  for (int64_t v : values) {
    if (v >= r.lo && v <= r.hi) continue;
    if (r.lo == r.hi)
      throw Error(what + " is " + shown + "; the engine supports only " + std::to_string(r.lo) +
                  (r.count > 1 ? " in every position" : ""));
    throw Error(what + " is " + shown + ", " + (r.count > 1 ? "each value " : "") + "must be in [" +
                std::to_string(r.lo) + ", " + std::to_string(r.hi) + "]");
  }
}

// A Conv/ConvTranspose weight the engine can take: sizes in range, the group dividing its
// channels, kernel_shape (when given) equal to its spatial size.
void check_conv_weight(const GraphNode& n, const GraphTensor& w, const std::string& who) {
  if (w.shape.size() != 4) return;  // check_initializer_uses names it
  const bool ok = w.shape[0] >= 1 && w.shape[1] >= 1 && w.shape[0] <= kMaxChannels && w.shape[1] <= kMaxChannels &&
                  w.shape[2] >= 1 && w.shape[3] >= 1 && w.shape[2] <= kMaxImageSide && w.shape[3] <= kMaxImageSide;
  require(ok, who + ": weight '" + w.name + "' has shape " + shape_text(w.shape) + ": channels must be in [1, " +
                  std::to_string(kMaxChannels) + "] and the kernel in [1, " + std::to_string(kMaxImageSide) + "]");
  const GraphAttribute* group = n.attribute("group");
  const int64_t groups = group ? group->i : 1;
  require(w.shape[0] % groups == 0 && w.shape[1] * groups <= kMaxChannels,
          who + ": group " + std::to_string(groups) + " does not fit weight '" + w.name + "' of shape " +
              shape_text(w.shape));
  if (const GraphAttribute* k = n.attribute("kernel_shape"))
    require(k->ints == std::vector<int64_t>{w.shape[2], w.shape[3]},
            who + ": kernel_shape " + shape_text(k->ints) + " disagrees with weight '" + w.name + "' of shape " +
                shape_text(w.shape));
}

void check_node_limits(const Graph& g, const GraphNode& n, const std::string& where) {
  const std::string who = where + ": " + n.op + " node '" + n.name + "'";
  for (const auto& a : n.attributes)
    for (const auto& r : kAttributeRules)
      if (n.op == r.op && a.name == r.name) check_attribute(a, r, who);
  if (n.op == "MaxPool") require(n.attribute("kernel_shape") != nullptr, who + ": needs a 'kernel_shape' attribute");
  if (n.op == "Conv" || n.op == "ConvTranspose" || n.op == "DepthwiseUpsample2x")
    if (const GraphTensor* w = initializer_input(g, n, 1)) check_conv_weight(n, *w, who);
  if (n.op == "DepthwiseUpsample2x") {  // the engine's own kernel reads a [C, 1, 2, 2] weight
    const GraphTensor* w = initializer_input(g, n, 1);
    require(w && w->shape.size() == 4 && w->shape[1] == 1 && w->shape[2] == 2 && w->shape[3] == 2,
            who + ": the weight (input 2) must be a [C, 1, 2, 2] initializer");
  }
}


void check_io(const RuntimeModel& m, const std::string& where) {
  const Graph& g = m.graph;
  require(m.size_divisor > 0, where + ": size_divisor " + std::to_string(m.size_divisor) + " is not positive");
  require(g.inputs.size() == 1 && g.outputs.size() == 1,
          where + ": the graph should have one input and one output, has " + std::to_string(g.inputs.size()) +
              " and " + std::to_string(g.outputs.size()));
  const auto& s = g.inputs[0].shape;
  require(s.size() == 4 && s[0] == 1 && s[1] > 0 && s[2] > 0 && s[3] > 0,
          where + ": input '" + g.inputs[0].name + "' should have a fixed shape [1, C, H, W], got " + shape_text(s));
  require(s[2] % m.size_divisor == 0 && s[3] % m.size_divisor == 0,
          where + ": input size " + std::to_string(s[2]) + "x" + std::to_string(s[3]) +
              " (HxW) is not a multiple of the size divisor " + std::to_string(m.size_divisor));
}

void check_absmax(const RuntimeModel& m, const std::string& where) {
  std::set<std::string> values;
  for (const auto& v : m.graph.inputs) values.insert(v.name);
  for (const auto& n : m.graph.nodes) values.insert(n.outputs.begin(), n.outputs.end());
  for (const auto& [name, v] : m.activation_absmax) {
    require(std::isfinite(v) && v >= 0, where + ": activation_absmax of '" + name + "' is " + std::to_string(v) +
                                            ", not a finite non-negative number");
    require(values.count(name), where + ": activation_absmax names '" + name +
                                    "', which is no graph input or node output");
  }
}

}  // namespace

void check_runtime_graph(const Graph& g, const std::string& where) {
  for (const auto& v : g.inputs) {
    const auto& s = v.shape;
    if (s.size() != 4) continue;  // check_io (or the engine) names the rank
    require(s[1] <= kMaxChannels, where + ": input '" + v.name + "' has " + std::to_string(s[1]) +
                                      " channels, more than the limit of " + std::to_string(kMaxChannels));
    check_image_size(s[2], s[3], where + ": input '" + v.name + "'");
  }
  for (const auto& n : g.nodes) check_node_limits(g, n, where);
  for (const auto& t : g.initializers)
    if (t.type == TensorType::F32) check_finite(t.f32.data(), t.f32.size(), where + ": tensor '" + t.name + "'");
}

namespace runtime_file {

// Expanded values of a packed weight: (q − z) · s per index of axis 0.
std::vector<float> expand(const PackedWeight& p, const std::vector<int64_t>& shape, const std::string& what) {
  require(!shape.empty() && shape[0] > 0, what + ": a packed weight needs an axis 0");
  // Bounded by the codes before anything is allocated: a product that wraps (or a count whose
  // packed size wraps) must not pass as a small tensor.
  const auto numel = checked_numel(shape);
  require(numel && p.bits > 0 && static_cast<uint64_t>(*numel) <= p.codes.size() * 8 / static_cast<uint64_t>(p.bits),
          what + ": shape " + shape_text(shape) + " needs more codes than its " + std::to_string(p.codes.size()) +
              " bytes hold");
  const int64_t n = *numel;
  const auto channels = static_cast<size_t>(shape[0]);
  require(p.scale.size() == channels && p.zero_point.size() == channels,
          what + ": " + std::to_string(p.scale.size()) + " scales and " + std::to_string(p.zero_point.size()) +
              " zero points for " + std::to_string(channels) + " channels");
  for (size_t c = 0; c < channels; ++c)  // as the model-file reader refuses it (weight_storage.cpp)
    require(p.zero_point[c] < (1u << p.bits), what + ": zero point " + std::to_string(p.zero_point[c]) + " of channel " +
                                                  std::to_string(c) + " does not fit in " + std::to_string(p.bits) +
                                                  " bits (corrupt file)");
  const std::vector<uint8_t> q = unpack_codes(p.codes.data(), p.codes.size(), static_cast<size_t>(n), p.bits);
  std::vector<float> out(static_cast<size_t>(n));
  const size_t per = static_cast<size_t>(n) / channels;
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = (static_cast<float>(q[i]) - static_cast<float>(p.zero_point[i / per])) * p.scale[i / per];
  return out;
}

// expand() with every error naming the file and the weight (bit unpacking's own errors do not).
std::vector<float> expand_weight(const PackedWeight& p, const std::vector<int64_t>& shape, const std::string& name,
                                 const std::string& where) {
  try {
    return expand(p, shape, where + ": packed weight '" + name + "'");
  } catch (const Error& e) {
    throw Error(naming(e.what(), where + ": packed weight", name));
  }
}

namespace {

void check_packed(const RuntimeModel& m, const std::string& where) {
  for (const auto& [name, p] : m.packed_weights) {
    const GraphTensor* t = m.graph.initializer(name);
    require(t && t->type == TensorType::F32, where + ": packed weight '" + name + "' is no F32 tensor of the graph");
    require(p.bits == 8 || p.bits == 4 || p.bits == 2, where + ": packed weight '" + name + "' has " + std::to_string(p.bits) + " bits (8, 4, 2)");
    for (float s : p.scale) require(std::isfinite(s) && s > 0, where + ": packed weight '" + name + "' has a scale that is not finite and positive");
    const std::vector<float> values = expand_weight(p, t->shape, name, where);
    require(values == t->f32, where + ": packed weight '" + name + "' does not expand to the graph's values");
  }
}

}  // namespace

void check_model(const RuntimeModel& m, const std::string& where) {
  require(m.preprocessing.is_object(), where + ": preprocessing should be a JSON object");
  require(m.config.is_object(), where + ": config should be a JSON object");
  check_io(m, where);
  check_initializers_match_graph(m.graph, where);
  check_initializer_uses(m.graph, where);
  check_runtime_graph(m.graph, where);
  check_absmax(m, where);
  check_packed(m, where);
  try {
    m.graph.validate();
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
}

}  // namespace runtime_file
}  // namespace leanseg
