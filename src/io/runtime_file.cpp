#include "leanseg/runtime_file.h"

#include "io/bit_pack.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <set>

#include "leanseg/error.h"
#include "leanseg/fs.h"
#include "leanseg/limits.h"
#include "leanseg/safetensors.h"

namespace leanseg {
namespace {

using json = nlohmann::json;

constexpr const char* kFormatName = "leanseg-runtime";

// Tensor bytes are copied with memcpy: safetensors is little-endian, and so is every platform
// leanseg targets (x86-64, AArch64).
static_assert(sizeof(float) == 4, "F32 tensors are copied bytewise");

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// --- graph structure ↔ JSON -----------------------------------------------------------------

const char* kind_name(GraphAttribute::Kind k) {
  switch (k) {
    case GraphAttribute::Kind::Int: return "int";
    case GraphAttribute::Kind::Float: return "float";
    case GraphAttribute::Kind::Ints: return "ints";
  }
  return "?";
}

// Layout of the graph JSON (initializers are the file's tensors, not part of it):
//   {"name": "unet-32",
//    "inputs":  [{"name": "image", "shape": [1, 1, 256, 256], "dim_names": ["", "", "", ""]}],
//    "outputs": [{"name": "logits", ...}],
//    "nodes": [{"op": "Conv", "name": "enc1.0.0", "inputs": ["image", "enc1.0.0.weight"],
//               "outputs": ["enc1.0.0"],
//               "attributes": [{"name": "group", "kind": "int", "value": 1},
//                              {"name": "alpha", "kind": "float", "value": 0.1666666716337204},
//                              {"name": "pads", "kind": "ints", "value": [1, 1, 1, 1]}]}, ...]}
// Floats are written as the double of the float, which JSON round-trips exactly.
json attribute_to_json(const GraphAttribute& a, const std::string& node) {
  json j{{"name", a.name}, {"kind", kind_name(a.kind)}};
  switch (a.kind) {
    case GraphAttribute::Kind::Int: j["value"] = a.i; break;
    case GraphAttribute::Kind::Float:
      // JSON has no NaN/inf: nlohmann would silently write null.
      require(std::isfinite(a.f), node + ": float attribute '" + a.name + "' is not finite");
      j["value"] = static_cast<double>(a.f);  // exact; dump prints enough digits to round-trip
      break;
    case GraphAttribute::Kind::Ints: j["value"] = a.ints; break;
  }
  return j;
}

json value_to_json(const GraphValue& v) { return {{"name", v.name}, {"shape", v.shape}, {"dim_names", v.dim_names}}; }

// Reads JSON with errors that say where in the file the problem is.
class JsonReader {
 public:
  JsonReader(const json& j, std::string context) : j_(j), context_(std::move(context)) {}

  const json& at(const char* key) const {
    require(j_.is_object(), context_ + ": expected a JSON object, got " + type_of(j_));
    require(j_.contains(key), context_ + ": missing key '" + key + "'");
    return j_.at(key);
  }
  std::string string(const char* key) const {
    const json& v = at(key);
    require(v.is_string(), context_ + ": '" + key + "' should be a string, got " + type_of(v));
    return v.get<std::string>();
  }
  int64_t integer(const char* key) const { return checked_integer(at(key), key); }
  // An integer that must lie in [lo, hi] (e.g. one narrowed to int afterwards).
  int64_t integer(const char* key, int64_t lo, int64_t hi) const {
    const int64_t v = integer(key);
    require(v >= lo && v <= hi, context_ + ": '" + key + "' is " + std::to_string(v) + ", must be in [" +
                                    std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
  }
  const json& array(const char* key) const {
    const json& v = at(key);
    require(v.is_array(), context_ + ": '" + key + "' should be an array, got " + type_of(v));
    return v;
  }
  const json& object(const char* key) const {
    const json& v = at(key);
    require(v.is_object(), context_ + ": '" + key + "' should be an object, got " + type_of(v));
    return v;
  }
  std::vector<int64_t> integers(const char* key) const {
    std::vector<int64_t> out;
    for (const auto& e : array(key)) {
      require(e.is_number_integer(), context_ + ": '" + key + "' should hold integers, got " + e.dump());
      out.push_back(checked_integer(e, key));
    }
    return out;
  }
  std::vector<std::string> strings(const char* key) const {
    std::vector<std::string> out;
    for (const auto& e : array(key)) {
      require(e.is_string(), context_ + ": '" + key + "' should hold strings, got " + e.dump());
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  const std::string& context() const { return context_; }

  static std::string type_of(const json& v) { return std::string(v.type_name()) + " " + v.dump(); }

 private:
  // nlohmann's get<int64_t>() wraps integers above 2^63 - 1: refused instead.
  int64_t checked_integer(const json& v, const char* key) const {
    require(v.is_number_integer(), context_ + ": '" + key + "' should be an integer, got " + type_of(v));
    const auto i = json_int64(v);
    require(i.has_value(), context_ + ": '" + key + "' holds " + v.dump() + ", which does not fit in a 64-bit integer");
    return *i;
  }

  const json& j_;
  std::string context_;
};

GraphAttribute attribute_from_json(const json& j, const std::string& context) {
  const JsonReader r(j, context);
  GraphAttribute a;
  a.name = r.string("name");
  const std::string where = context + " attribute '" + a.name + "'";
  const std::string kind = r.string("kind");
  const json& v = r.at("value");
  if (kind == "int") {
    require(v.is_number_integer(), where + ": value should be an integer, got " + v.dump());
    const auto i = json_int64(v);  // get<int64_t>() would wrap values above 2^63 - 1
    require(i.has_value(), where + ": value " + v.dump() + " does not fit in a 64-bit integer");
    a.kind = GraphAttribute::Kind::Int;
    a.i = *i;
  } else if (kind == "float") {
    require(v.is_number(), where + ": value should be a number, got " + v.dump());
    const double d = v.get<double>();
    require(std::isfinite(d) && std::fabs(d) <= FLT_MAX, where + ": value " + v.dump() + " is not a finite float");
    a.kind = GraphAttribute::Kind::Float;
    a.f = static_cast<float>(d);
  } else if (kind == "ints") {
    a.kind = GraphAttribute::Kind::Ints;
    a.ints = JsonReader(j, where).integers("value");
  } else {
    throw Error(where + ": unknown attribute kind '" + kind + "' (int, float or ints)");
  }
  return a;
}

GraphNode node_from_json(const json& j, const std::string& context) {
  const JsonReader r(j, context);
  GraphNode n;
  n.op = r.string("op");
  n.name = r.string("name");
  const JsonReader named(j, context + " (" + n.op + " '" + n.name + "')");
  n.inputs = named.strings("inputs");
  n.outputs = named.strings("outputs");
  for (const auto& a : named.array("attributes")) n.attributes.push_back(attribute_from_json(a, named.context()));
  return n;
}

GraphValue value_from_json(const json& j, const std::string& context) {
  const JsonReader r(j, context);
  GraphValue v;
  v.name = r.string("name");
  const JsonReader named(j, context + " '" + v.name + "'");
  v.shape = named.integers("shape");
  v.dim_names = named.strings("dim_names");
  require(v.shape.size() == v.dim_names.size(), named.context() + ": " + std::to_string(v.shape.size()) +
                                                    " axes but " + std::to_string(v.dim_names.size()) +
                                                    " axis names");
  return v;
}

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

namespace {

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

// --- integrity ---------------------------------------------------------------------------------

// The metadata entry "checksums": FNV-1a 64 of every tensor's bytes and of the rest of the
// metadata (its canonical dump: nlohmann sorts keys and round-trips numbers), so that a flipped
// bit anywhere in the weights or the graph is refused instead of changing the segmentation.
// Files written before checksums existed have no entry and are read unverified.
constexpr const char* kChecksumsKey = "checksums";
constexpr const char* kChecksumAlgorithm = "fnv1a-64";

uint64_t fnv1a64(const void* data, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

std::string hex64(uint64_t v) {
  static const char* digits = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<size_t>(i)] = digits[v & 15];
  return out;
}

std::string metadata_checksum(json meta) {
  meta.erase(kChecksumsKey);
  const std::string text = meta.dump();
  return hex64(fnv1a64(text.data(), text.size()));
}

json checksums_json(const json& meta, const std::vector<TensorToWrite>& tensors) {
  json per_tensor = json::object();
  for (const auto& t : tensors) per_tensor[t.name] = hex64(fnv1a64(t.data, t.nbytes));
  return {{"algorithm", kChecksumAlgorithm}, {"metadata", metadata_checksum(meta)}, {"tensors", per_tensor}};
}

// The stored checksums of a file being read; verify() checks each tensor as it is read.
class Integrity {
 public:
  Integrity(const json& meta, const SafeTensorsFile& file, const std::string& where) : where_(where) {
    if (!meta.contains(kChecksumsKey)) return;
    const JsonReader r(meta.at(kChecksumsKey), where + ": '" + kChecksumsKey + "'");
    const std::string algorithm = r.string("algorithm");
    require(algorithm == kChecksumAlgorithm,
            r.context() + ": unknown algorithm '" + algorithm + "' (this build knows " + kChecksumAlgorithm + ")");
    require(r.string("metadata") == metadata_checksum(meta),
            where + ": the metadata fails its checksum: the file is damaged (a flipped bit or an edit); export it again");
    const json& listed = r.object("tensors");
    for (auto it = listed.begin(); it != listed.end(); ++it) {
      require(it.value().is_string(), r.context() + ": checksum of tensor '" + it.key() + "' should be a string");
      tensors_[it.key()] = it.value().get<std::string>();
    }
    for (const auto& t : file.tensors())
      require(tensors_.count(t.name), where + ": tensor '" + t.name + "' has no checksum: the file was altered");
    require(tensors_.size() == file.tensors().size(),
            where + ": the checksums list tensors the file does not hold: the file was altered");
    present_ = true;
  }
  bool present() const { return present_; }
  void verify(const std::string& tensor, const void* data, size_t n) const {
    if (!present_) return;
    const std::string computed = hex64(fnv1a64(data, n));
    require(computed == tensors_.at(tensor), where_ + ": tensor '" + tensor + "' fails its checksum (stored " +
                                                 tensors_.at(tensor) + ", computed " + computed +
                                                 "): the file is damaged (a flipped bit or a partial copy); export it again");
  }

 private:
  std::string where_;
  bool present_ = false;
  std::map<std::string, std::string> tensors_;
};

// Copies the tensor's bytes to dst (t.nbytes() of them) and checks them against the checksum.
void read_checked(const SafeTensorsFile& file, const TensorInfo& t, void* dst, const Integrity& integrity) {
  file.read(t, dst);
  integrity.verify(t.name, dst, t.nbytes());
}

// --- reading -----------------------------------------------------------------------------------

// Tensor names in the order of the safetensors header, which is the order the writer had them
// in the graph: restoring it makes serialize → parse → serialize byte-identical (offsets alone
// cannot order empty tensors). Called only on a header SafeTensorsFile::parse accepted.
std::vector<std::string> header_tensor_order(const std::string& header) {
  std::vector<std::string> names;
  const auto ordered = nlohmann::ordered_json::parse(header);
  for (auto it = ordered.begin(); it != ordered.end(); ++it)
    if (it.key() != "__metadata__") names.push_back(it.key());
  return names;
}

GraphTensor tensor_from_file(const SafeTensorsFile& file, const TensorInfo& info, const Integrity& integrity,
                             const std::string& where) {
  GraphTensor t;
  t.name = info.name;
  t.shape = info.shape;
  if (info.dtype == DType::F32) {
    t.type = TensorType::F32;
    t.f32.resize(static_cast<size_t>(info.numel()));
    read_checked(file, info, t.f32.data(), integrity);
  } else if (info.dtype == DType::I64) {
    t.type = TensorType::I64;
    t.i64.resize(static_cast<size_t>(info.numel()));
    read_checked(file, info, t.i64.data(), integrity);
  } else {
    throw Error(where + ": tensor '" + info.name + "' has dtype " + dtype_name(info.dtype) +
                "; runtime files hold F32 and I64 tensors only");
  }
  return t;
}

std::map<std::string, float> absmax_from_json(const json& j, const std::string& where) {
  std::map<std::string, float> out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const json& v = it.value();
    const bool ok = v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() >= 0 &&
                    v.get<double>() <= FLT_MAX;
    require(ok, where + ": activation_absmax of '" + it.key() + "' is " + v.dump() +
                    ", not a finite non-negative number");
    out[it.key()] = static_cast<float>(v.get<double>());
  }
  return out;
}

json metadata_json(const SafeTensorsFile& file, const std::string& where) {
  const auto it = file.metadata().find(kRuntimeMetadataKey);
  require(it != file.metadata().end(),
          where + ": no '" + std::string(kRuntimeMetadataKey) +
              "' metadata entry: not a leanseg runtime file (write one with `leanseg export --format runtime`)");
  try {
    return json::parse(it->second);
  } catch (const std::exception& e) {
    throw Error(where + ": metadata '" + std::string(kRuntimeMetadataKey) + "' is not valid JSON (" + e.what() + ")");
  }
}

void check_format_and_version(const JsonReader& r, const std::string& where) {
  const std::string format = r.string("format");
  require(format == kFormatName, where + ": format is '" + format + "', expected '" + kFormatName + "'");
  const int64_t version = r.integer("version");
  require(version <= kRuntimeFormatVersion,
          where + " was written by a newer leanseg (runtime format version " + std::to_string(version) +
              "; this build reads up to " + std::to_string(kRuntimeFormatVersion) + ")");
  require(version >= 1, where + ": runtime format version " + std::to_string(version) + " is invalid (versions start at 1)");
}

}  // namespace

nlohmann::json graph_structure_to_json(const Graph& graph) {
  json nodes = json::array();
  for (const auto& n : graph.nodes) {
    json attributes = json::array();
    for (const auto& a : n.attributes)
      attributes.push_back(attribute_to_json(a, "graph '" + graph.name + "': " + n.op + " node '" + n.name + "'"));
    nodes.push_back({{"op", n.op}, {"name", n.name}, {"inputs", n.inputs}, {"outputs", n.outputs},
                     {"attributes", attributes}});
  }
  json inputs = json::array(), outputs = json::array();
  for (const auto& v : graph.inputs) inputs.push_back(value_to_json(v));
  for (const auto& v : graph.outputs) outputs.push_back(value_to_json(v));
  return {{"name", graph.name}, {"inputs", inputs}, {"outputs", outputs}, {"nodes", nodes}};
}

Graph graph_structure_from_json(const nlohmann::json& j, const std::string& where) {
  const JsonReader r(j, where + ": graph");
  Graph g;
  g.name = r.string("name");
  const auto& inputs = r.array("inputs");
  for (size_t i = 0; i < inputs.size(); ++i)
    g.inputs.push_back(value_from_json(inputs[i], where + ": graph input " + std::to_string(i)));
  const auto& outputs = r.array("outputs");
  for (size_t i = 0; i < outputs.size(); ++i)
    g.outputs.push_back(value_from_json(outputs[i], where + ": graph output " + std::to_string(i)));
  const auto& nodes = r.array("nodes");
  for (size_t i = 0; i < nodes.size(); ++i)
    g.nodes.push_back(node_from_json(nodes[i], where + ": graph node " + std::to_string(i)));
  return g;
}

std::vector<unsigned char> serialize_runtime_model(const RuntimeModel& model) {
  const std::string where = "runtime model '" + model.graph.name + "'";
  check_model(model, where);  // never write a file the reader would refuse
  json absmax = json::object();
  for (const auto& [name, v] : model.activation_absmax) absmax[name] = static_cast<double>(v);
  json packed = json::object();
  for (const auto& [name, p] : model.packed_weights) packed[name] = {{"bits", p.bits}, {"shape", model.graph.initializer(name)->shape}};
  json meta{{"format", kFormatName},
                  {"version", packed.empty() ? 1 : 2},  // version 1 readers can read it
                  {"graph", graph_structure_to_json(model.graph)},
                  {"preprocessing", model.preprocessing},
                  {"config", model.config},
                  {"size_divisor", model.size_divisor},
                  {"activation_absmax", absmax}};
  if (!packed.empty()) meta["packed_weights"] = packed;
  std::vector<TensorToWrite> tensors;
  for (const auto& t : model.graph.initializers) {
    require(t.type != TensorType::I8, "runtime files hold F32 and I64 tensors; '" + t.name + "' is int8 (an ONNX QDQ graph)");
    auto p = model.packed_weights.find(t.name);
    if (p != model.packed_weights.end()) {
      const PackedWeight& w = p->second;
      const int64_t c = static_cast<int64_t>(w.scale.size());
      tensors.push_back({t.name + ".q_codes", DType::U8, {static_cast<int64_t>(w.codes.size())}, w.codes.data(), w.codes.size()});
      tensors.push_back({t.name + ".q_scale", DType::F32, {c}, w.scale.data(), w.scale.size() * sizeof(float)});
      tensors.push_back({t.name + ".q_zero_point", DType::U8, {c}, w.zero_point.data(), w.zero_point.size()});
      continue;
    }
    const bool f32 = t.type == TensorType::F32;
    tensors.push_back({t.name, f32 ? DType::F32 : DType::I64, t.shape,
                       f32 ? static_cast<const void*>(t.f32.data()) : static_cast<const void*>(t.i64.data()),
                       f32 ? t.f32.size() * sizeof(float) : t.i64.size() * sizeof(int64_t)});
  }
  meta[kChecksumsKey] = checksums_json(meta, tensors);
  return serialize_safetensors(tensors, {{kRuntimeMetadataKey, meta.dump()}});
}

void write_runtime_model(const RuntimeModel& model, const std::string& path) {
  const auto bytes = serialize_runtime_model(model);
  atomic_write(path, [&](std::ostream& out) { out.write(reinterpret_cast<const char*>(bytes.data()), bytes.size()); });
}

namespace {

// "W" for "W.q_codes", "W.q_scale", "W.q_zero_point"; "" otherwise.
std::string packed_base(const std::string& name) {
  for (const char* suffix : {".q_codes", ".q_scale", ".q_zero_point"}) {
    const std::string s = suffix;
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) return name.substr(0, name.size() - s.size());
  }
  return "";
}

template <class T>
std::vector<T> read_vector(const SafeTensorsFile& file, const std::string& name, DType dtype, const Integrity& integrity,
                           const std::string& where) {
  const TensorInfo* info = file.find(name);
  require(info != nullptr, where + ": packed weight tensor '" + name + "' is missing");
  require(info->dtype == dtype && info->shape.size() == 1,
          where + ": packed weight tensor '" + name + "' should be 1-D " + dtype_name(dtype) + ", got " + dtype_name(info->dtype));
  std::vector<T> v(static_cast<size_t>(info->numel()));
  read_checked(file, *info, v.data(), integrity);
  return v;
}

// The expanded F32 initializer of a packed weight, whose shape the graph's node gives.
struct PackedEntry {
  int bits = 0;
  std::vector<int64_t> shape;
};

void read_packed(const SafeTensorsFile& file, const std::string& name, const PackedEntry& e, RuntimeModel& m,
                 const Integrity& integrity, const std::string& where) {
  const int bits = e.bits;
  PackedWeight p;
  p.bits = bits;
  require(bits == 8 || bits == 4 || bits == 2, where + ": packed weight '" + name + "' has " + std::to_string(bits) + " bits (8, 4, 2)");
  p.codes = read_vector<uint8_t>(file, name + ".q_codes", DType::U8, integrity, where);
  p.scale = read_vector<float>(file, name + ".q_scale", DType::F32, integrity, where);
  p.zero_point = read_vector<uint8_t>(file, name + ".q_zero_point", DType::U8, integrity, where);
  GraphTensor t;
  t.name = name;
  t.shape = e.shape;
  t.f32 = expand_weight(p, t.shape, name, where);
  m.graph.initializers.push_back(std::move(t));
  m.packed_weights[name] = std::move(p);
}

RuntimeModel model_from_file(const SafeTensorsFile& file, const std::string& label) {
  const std::string where = "'" + label + "'";
  const json meta = metadata_json(file, where);
  const JsonReader r(meta, where + ": metadata '" + kRuntimeMetadataKey + "'");
  check_format_and_version(r, where);
  const Integrity integrity(meta, file, where);

  RuntimeModel m;
  m.has_checksums = integrity.present();
  m.graph = graph_structure_from_json(r.at("graph"), where);
  m.preprocessing = r.object("preprocessing");
  m.config = r.object("config");
  const int64_t divisor = r.integer("size_divisor");
  require(divisor > 0, where + ": size_divisor " + std::to_string(divisor) + " is not positive");
  require(divisor <= (1 << 20), where + ": size_divisor " + std::to_string(divisor) + " is implausibly large");
  m.size_divisor = static_cast<int>(divisor);
  m.activation_absmax = absmax_from_json(r.object("activation_absmax"), where);
  std::map<std::string, PackedEntry> packed_bits;  // weight name → bits and shape
  if (meta.contains("packed_weights")) {
    const json& packed = r.object("packed_weights");
    for (auto it = packed.begin(); it != packed.end(); ++it) {
      const std::string what = where + ": packed weight '" + it.key() + "'";
      const JsonReader e(it.value(), what);
      PackedEntry entry;
      entry.bits = static_cast<int>(e.integer("bits", 0, 64));  // read_packed says which bit-widths exist
      entry.shape = e.integers("shape");
      bool ok = entry.shape.size() == 4;
      for (int64_t d : entry.shape) ok = ok && d > 0 && d <= kMaxChannels;
      const auto numel = checked_numel(entry.shape);
      require(ok && numel, what + ": 'shape' should be 4 integers in [1, " + std::to_string(kMaxChannels) + "], got " +
                               shape_text(entry.shape));
      packed_bits[it.key()] = entry;
    }
  }
  std::set<std::string> done;
  for (const auto& name : header_tensor_order(file.header_text())) {
    const std::string base = packed_base(name);
    if (!base.empty() && packed_bits.count(base)) {
      if (done.insert(base).second) read_packed(file, base, packed_bits.at(base), m, integrity, where);
      continue;
    }
    m.graph.initializers.push_back(tensor_from_file(file, file.at(name), integrity, where));
  }
  for (const auto& [name, entry] : packed_bits)
    require(done.count(name), where + ": packed weight '" + name + "' has no tensors in the file");
  check_model(m, where);
  return m;
}

}  // namespace

RuntimeModel parse_runtime_model(std::vector<unsigned char> bytes, const std::string& label) {
  return model_from_file(SafeTensorsFile::parse(std::move(bytes), label), label);
}

// Tensors are read one at a time from the file: loading never holds the file and its parsed
// copy at once (peak memory of small deployments).
RuntimeModel read_runtime_model(const std::string& path) { return model_from_file(SafeTensorsFile::open_lazy(path), path); }

void pack_conv_weights(RuntimeModel& m, int bits) {
  require(bits == 8 || bits == 4 || bits == 2, "packed weights: unknown bit-width " + std::to_string(bits) + " (8, 4, 2)");
  const float levels = static_cast<float>((1 << bits) - 1);
  for (const auto& n : m.graph.nodes) {
    if ((n.op != "Conv" && n.op != "ConvTranspose") || n.inputs.size() < 2) continue;
    GraphTensor* w = nullptr;
    for (auto& t : m.graph.initializers)
      if (t.name == n.inputs[1] && t.type == TensorType::F32 && t.shape.size() == 4) w = &t;
    if (w == nullptr || m.packed_weights.count(w->name)) continue;
    // Integer affine quantization per index of axis 0, the range widened to include 0 (as
    // `leanseg compress` does): s = (max − min) / (2^b − 1), z = round(−min / s).
    const size_t channels = static_cast<size_t>(w->shape[0]), per = w->f32.size() / channels;
    PackedWeight p;
    p.bits = bits;
    std::vector<uint8_t> q(w->f32.size());
    for (size_t c = 0; c < channels; ++c) {
      const auto first = w->f32.begin() + static_cast<std::ptrdiff_t>(c * per), last = first + static_cast<std::ptrdiff_t>(per);
      const float lo = std::min(0.f, *std::min_element(first, last)), hi = std::max(0.f, *std::max_element(first, last));
      const float s = hi > lo ? (hi - lo) / levels : 1.f;
      const float z = std::clamp(std::nearbyint(-lo / s), 0.f, levels);
      p.scale.push_back(s);
      p.zero_point.push_back(static_cast<uint8_t>(z));
      for (size_t i = c * per; i < (c + 1) * per; ++i)
        q[i] = static_cast<uint8_t>(std::clamp(std::nearbyint(w->f32[i] / s) + z, 0.f, levels));
    }
    p.codes = pack_codes(q.data(), q.size(), bits);
    w->f32 = expand(p, w->shape, "packed weight '" + w->name + "'");
    m.packed_weights[w->name] = std::move(p);
  }
}

}  // namespace leanseg
