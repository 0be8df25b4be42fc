#include "leanseg/runtime_file.h"

#include "io/bit_pack.h"
#include "io/runtime_file_checks.h"

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

using runtime_file::check_model;
using runtime_file::expand;
using runtime_file::expand_weight;
using runtime_file::kind_name;
using runtime_file::shape_text;

// --- graph structure ↔ JSON -----------------------------------------------------------------

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
