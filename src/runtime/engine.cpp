// The oneDNN engine. Loading turns the exported graph into a list of steps for one input size:
//   1. simplify the graph (graph_rewrite.h) and fuse each Conv/ConvTranspose with what follows
//      it: a residual Add (oneDNN "sum" post-op, in place when the other operand dies there)
//      and an activation (ReLU, ReLU6 = clip, sigmoid) as eltwise post-ops;
//   2. create one oneDNN primitive per step, activations in NHWC (channels-last: every oneDNN
//      primitive runs it natively, so no layout reorders are needed between layers), weights
//      reordered once into the layout each convolution asks for;
//   3. give every activation and every step's scratchpad a fixed offset in one arena (arena.h),
//      planned from when each is alive.
// fp32 dense 3x3 convolutions on large maps run on the engine's own Winograd kernel
// (winograd.h) instead of a oneDNN primitive when EngineOptions::winograd is set.
// The few ops at the bottleneck that are not image-shaped (attention's reshapes, softmax and
// matmuls; GroupNorm on pooled features) run on small host tensors with the reference code.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <dnnl.hpp>
#include <dnnl_debug.h>
#include <map>
#include <set>
#include <unordered_map>

#include "arena.h"
#include "graph_rewrite.h"
#include "kernels.h"
#include "leanseg/error.h"
#include "leanseg/limits.h"
#include "leanseg/runtime.h"
#include "leanseg/runtime_file.h"
#include "leanseg/safetensors.h"
#include "reference.h"
#include "winograd.h"

namespace leanseg::runtime {
namespace {
// Sets the calling thread's OpenMP thread count for the engine's work and restores the
// caller's on exit. oneDNN (built on OpenMP in Debian) and the engine's kernels size their
// parallel regions from omp_get_max_threads(), an OpenMP setting of the calling thread: a
// host program's own OpenMP code must find it as it left it.
class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(int threads) : saved_(omp_get_max_threads()) {
    if (threads != saved_) omp_set_num_threads(threads);
  }
  ~ScopedOmpThreads() {
    if (omp_get_max_threads() != saved_) omp_set_num_threads(saved_);
  }
  ScopedOmpThreads(const ScopedOmpThreads&) = delete;
  ScopedOmpThreads& operator=(const ScopedOmpThreads&) = delete;

 private:
  int saved_;
};
}  // namespace

Precision precision_from_name(const std::string& name) {
  if (name == "fp32" || name == "f32") return Precision::F32;
  if (name == "bf16") return Precision::BF16;
  if (name == "int8" || name == "i8") return Precision::I8;
  throw Error("unknown precision '" + name + "' (fp32, bf16, int8)");
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::F32: return "fp32";
    case Precision::BF16: return "bf16";
    case Precision::I8: return "int8";
  }
  return "?";
}

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

// One graph value as the engine holds it: an arena tensor (NHWC, activation dtype) or a small
// host tensor (float/int64 NCHW-ordered) for the ops that run on the host.
struct Value {
  std::string name;
  memory::dims dims;
  bool host = false;
  memory::desc md;       // arena values
  int storage = -1;      // arena values: index of the value whose bytes it uses (itself unless in place)
  int first = 0, last = 0;
  memory mem;            // arena values, bound after planning
  PlainTensor tensor;    // host values (and host mirrors of arena values read by host ops)
  bool mirrored = false; // arena value with an up-to-date copy in `tensor`
  bool nonnegative = false;  // produced by ReLU/ReLU6/sigmoid (or ops keeping that): u8 in int8 mode
  float qscale = 1.f;        // int8 values (md u8/s8): x ≈ q / qscale
};

struct Step {
  enum class Kind { Primitive, Host, Upsample, Winograd } kind = Kind::Primitive;
  std::string name;  // node name (error messages, profiling)
  dnnl::primitive primitive;
  std::vector<std::pair<int, int>> value_args;     // DNNL_ARG_* → value index
  std::map<int, memory::desc> views;               // DNNL_ARG_* → another view of that value's bytes
  std::unordered_map<int, memory> fixed_args;      // weights, bias, constants
  memory::desc scratchpad;
  std::unordered_map<int, memory> args;            // bound after planning
  // Upsample steps (kernels.h): taps [4][C] and bias [C]; Winograd steps (winograd.h): weights
  // [Cin][3][3][Cout] and bias [Cout]
  std::vector<float> weights, bias;
  // Winograd steps: the shape, the input values (read through DepthToSpace when flagged), and the
  // scratch planned in the arena
  WinogradShape winograd;
  std::vector<std::pair<int, bool>> winograd_inputs;
  std::vector<WinogradSource> winograd_sources;  // bound after planning
  size_t scratch_bytes = 0;
  float* scratch = nullptr;
  // Host steps
  const GraphNode* node = nullptr;
  std::vector<int> inputs;  // value indices (host tensors)
  int output = -1;
};

memory::dims to_dims(const std::vector<int64_t>& shape) { return memory::dims(shape.begin(), shape.end()); }

std::string dims_text(const memory::dims& d) {
  std::string out = "[";
  for (size_t i = 0; i < d.size(); ++i) out += (i ? ", " : "") + std::to_string(d[i]);
  return out + "]";
}

std::vector<int64_t> ints_attr(const GraphNode& n, const char* name, std::vector<int64_t> fallback) {
  const auto* a = n.attribute(name);
  return a ? a->ints : fallback;
}
int64_t int_attr(const GraphNode& n, const char* name, int64_t fallback) {
  const auto* a = n.attribute(name);
  return a ? a->i : fallback;
}
float float_attr(const GraphNode& n, const char* name, float fallback) {
  const auto* a = n.attribute(name);
  return a ? a->f : fallback;
}

// The activation a node applies, when oneDNN can fuse it as an eltwise post-op.
struct Activation {
  dnnl::algorithm algorithm;
  float alpha = 0, beta = 0;
};
bool activation_of(const GraphNode& n, Activation* act) {
  if (n.op == "Relu") return *act = {dnnl::algorithm::eltwise_relu, 0, 0}, true;
  if (n.op == "Sigmoid") return *act = {dnnl::algorithm::eltwise_logistic, 0, 0}, true;
  if (n.op == "Clip") return *act = {dnnl::algorithm::eltwise_clip, float_attr(n, "min", 0), float_attr(n, "max", 0)}, true;
  return false;
}

// 127 / max |w| per output channel, in oneDNN's output-channel order (g-major when grouped).
// ONNX layouts: conv [O, I/g, kh, kw]; transposed conv [I, O/g, kh, kw].
std::vector<float> per_channel_weight_scales(const GraphTensor& w, bool transposed, int64_t groups) {
  const int64_t a = w.shape[0], b = w.shape[1], k = w.shape[2] * w.shape[3];
  const int64_t out = transposed ? b * groups : a;
  std::vector<float> absmax(out, 0.f);
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j) {
      const int64_t oc = transposed ? (i / (a / groups)) * b + j : i;
      for (int64_t t = 0; t < k; ++t) absmax[oc] = std::max(absmax[oc], std::abs(w.f32[(i * b + j) * k + t]));
    }
  std::vector<float> scales(out);
  for (int64_t c = 0; c < out; ++c) scales[c] = absmax[c] > 0 ? 127.f / absmax[c] : 1.f;
  return scales;
}

// True when, at input size `in` (NCHW), every tap of conv `n` but the centre one reads only
// padding: stride 1, an odd kernel, "same" padding and a dilation of at least the map's side
// on every axis the kernel spans. M1's ASPP branches of rates 12 and 18 on the 8x8 bottleneck
// of a 256x256 input are such convs: ~76 % of ASPP's multiply-adds there are zeros.
bool only_centre_tap_reads_the_map(const GraphNode& n, const GraphTensor& w, const memory::dims& in) {
  if (n.op != "Conv" || w.shape.size() != 4) return false;
  const auto st = ints_attr(n, "strides", {1, 1}), pads = ints_attr(n, "pads", {0, 0, 0, 0});
  const auto dil = ints_attr(n, "dilations", {1, 1});
  if (st != std::vector<int64_t>{1, 1}) return false;
  bool any_tap_dropped = false;
  for (int a = 0; a < 2; ++a) {
    const int64_t k = w.shape[2 + a], centre = (k - 1) / 2;
    if (k % 2 == 0 || pads[a] != centre * dil[a] || pads[a + 2] != centre * dil[a]) return false;
    if (k > 1 && dil[a] < in[2 + a]) return false;
    any_tap_dropped = any_tap_dropped || k > 1;
  }
  return any_tap_dropped;
}

// Such a conv is exactly a 1x1 conv with its centre tap's weights ([O, I/g, 1, 1]).
GraphTensor centre_tap_weights(const GraphTensor& w) {
  GraphTensor c;
  c.name = w.name + "#centre_tap";
  c.shape = {w.shape[0], w.shape[1], 1, 1};
  const int64_t kh = w.shape[2], kw = w.shape[3], taps = kh * kw, centre = (kh / 2) * kw + kw / 2;
  c.f32.resize(static_cast<size_t>(w.shape[0] * w.shape[1]));
  for (size_t i = 0; i < c.f32.size(); ++i) c.f32[i] = w.f32[i * taps + centre];
  return c;
}

GraphNode as_centre_tap_conv(const GraphNode& n) {
  GraphNode c = n;
  c.attributes.clear();
  for (const auto& a : n.attributes)
    if (a.name == "group") c.attributes.push_back(a);
  c.attributes.push_back(GraphAttribute::of("kernel_shape", std::vector<int64_t>{1, 1}));
  return c;
}

}  // namespace

bool bf16_is_supported_on_this_cpu() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

bool int8_is_exact_on_this_cpu() {
  return __builtin_cpu_supports("avx512vnni") || __builtin_cpu_supports("avxvnni");
}

struct Engine::Impl {
  RuntimeModel model;
  EngineOptions options;
  dnnl::engine cpu{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{cpu};
  dt act_dt = dt::f32;

  std::vector<GraphNode> nodes;  // simplified graph
  std::vector<GraphTensor> rewritten_constants;  // weights the simplification rearranged
  std::map<std::string, const GraphTensor*> constants;
  std::map<std::string, int> readers;  // value → number of reading nodes/outputs

  int height = 0, width = 0, channels = 0;
  std::vector<Value> values;
  std::map<std::string, int> value_of;  // graph value → index in `values`
  std::map<std::string, std::vector<std::string>> split_concats;  // concat read in parts by its conv
  // DepthToSpace outputs never built: the Winograd conv reading them (through a concat) reads
  // their input, the low-resolution map, through the permutation itself
  std::map<std::string, int> deferred_depth_to_space;
  std::vector<Step> steps;
  std::vector<unsigned char, std::allocator<unsigned char>> arena;
  size_t weights = 0;
  double flops = 0;  // convolutions at the planned size
  memory input_user, input_mem;  // user's planar f32 buffer → arena image
  int output_value = -1;
  memory output_user;
  std::vector<float> output;

  // The .lsr file the model came from (Engine::load): conv weights are dropped from memory once
  // packed and read again from it if a new input size needs them packed anew. Null for models
  // built in memory (from_model), which keep their weights.
  std::unique_ptr<SafeTensorsFile> source;

  void init(RuntimeModel m, const EngineOptions& o);
  void plan(int h, int w);
  int thread_count() const { return options.threads > 0 ? options.threads : omp_get_num_procs(); }
  void run(const float* input, std::vector<StepProfile>* profile = nullptr);
  void run_step(Step& s);

 private:
  int add_value(const std::string& name, memory::dims dims, bool host);
  memory::desc act_md(const memory::dims& dims) const { return memory::desc(dims, act_dt, tag::nhwc); }
  memory constant_memory(const GraphTensor& t, memory::dims dims, memory::format_tag format);
  // An initializer of the file that only `readers_needed` nodes read (null otherwise): safe to drop.
  GraphTensor* droppable(const std::string& name, int readers_needed);
  void drop(GraphTensor& t) { std::vector<float>().swap(t.f32); }
  // Weights the simplification rearranged (read by one conv): like file weights, dropped once
  // packed; a later plan for another size simplifies the graph again.
  GraphTensor* droppable_rewritten(const std::string& name);
  bool rewritten_dropped = false;
  void simplify();
  void fetch(GraphTensor& t);  // reads a dropped tensor back from `source`
  int arena_input(const std::string& name);  // value index of an arena value (importing host values)
  int quantized_input(int value, float* scale);  // u8/s8 copy of an arena value (int8 mode)
  // True when every reader of `value` is a Conv/ConvTranspose reading it as its input.
  bool only_convs_read(const std::string& value) const {
    int conv_reads = 0;
    for (const auto& n : nodes)
      for (size_t k = 0; k < n.inputs.size(); ++k)
        if (n.inputs[k] == value) {
          if (k != 0 || (n.op != "Conv" && n.op != "ConvTranspose")) return false;
          ++conv_reads;
        }
    return conv_reads > 0 && conv_reads == readers.at(value);
  }
  int host_input(const std::string& name);   // value index with a host tensor (mirroring arena values)
  void use(int value) { values[value].last = static_cast<int>(steps.size()); }
  int produce(Step step, int out);
  int storage_root(int v) const {
    while (values[v].storage != v) v = values[v].storage;
    return v;
  }

  void lower_conv(size_t i, std::set<size_t>& fused);
  struct Followers {
    std::string out_name;  // the value the fused conv finally writes
    int sum_other = -1;    // residual addend (sum post-op), or -1
    bool has_act = false, nonnegative_out = false;
    Activation act{dnnl::algorithm::eltwise_relu};
  };
  Followers fusable_followers(size_t i, const memory::dims& od, std::set<size_t>& fused);
  struct ConvOutput {
    memory::dims dims;
    dt type;
    float scale;  // int8 outputs: x ≈ q / scale
  };
  bool winograd_applies(const GraphNode& n, const GraphTensor& w, const std::vector<int64_t>& in_channels,
                        const memory::dims& out_dims) const;
  bool read_by_winograd_concat(const std::string& value, const memory::dims& dims) const;
  bool read_by_winograd_conv(const std::string& value, const memory::dims& dims) const;
  // The dims a conv reads from arena value v: v's own, or through a deferred DepthToSpace(2).
  memory::dims dims_read(int v, bool through_depth_to_space) const {
    const memory::dims& d = values[v].dims;
    return through_depth_to_space ? memory::dims{d[0], d[1] / 4, 2 * d[2], 2 * d[3]} : d;
  }
  // fp32; and int8 on CPUs without VNNI, where oneDNN's int8 3x3 convs (jit_uni_int8:avx2) are
  // slower than the fp32 Winograd kernel (M1 at 256² on Zen 1: dec1's first conv 32.0 ms in int8,
  // 17.5 ms Winograd) and halve the weights: those convs stay fp32 inside the int8 plan.
  bool winograd_serves_precision() const {
    return options.precision == Precision::F32 || (options.precision == Precision::I8 && !int8_is_exact_on_this_cpu());
  }
  const GraphNode* sole_reader_node(const std::string& value) const;
  Step winograd_step(const GraphNode& n, const GraphTensor& w, const GraphTensor* b,
                     const std::vector<std::pair<int, bool>>& inputs, const memory::dims& od, const Followers& f);
  Step conv_step(const GraphNode& n, const GraphTensor& w, const GraphTensor* b, int x, int64_t channel_offset,
                 const ConvOutput& o, const dnnl::post_ops& post, const std::vector<float>& weight_scales);
  void accumulate_into(int out, int addend, const std::string& node);
  void lower_binary(const GraphNode& n);
  void lower_eltwise(const GraphNode& n);
  void lower_pool(const GraphNode& n);
  void lower_concat(const GraphNode& n);
  void lower_quantizing_concat(const GraphNode& n);
  bool read_in_parts_by_convs(const GraphNode& concat) const;
  std::vector<const GraphNode*> convs_reading_channel_concat(const GraphNode& concat) const;
  void lower_depth_to_space(const GraphNode& n);
  void lower_depthwise_upsample(const GraphNode& n);
  int converted(int value, dt type);  // `value` as `type` (a reorder step when it differs)
  int copied(int value, const std::string& name, const memory::desc& md);
  void lower_host(const GraphNode& n);
  void bind();
  std::string where(const std::string& node) const { return "runtime model '" + model.graph.name + "', node '" + node + "'"; }
};

void Engine::Impl::init(RuntimeModel m, const EngineOptions& o) {
  model = std::move(m);
  options = o;
  require(options.threads >= 0, "threads must be >= 0, got " + std::to_string(options.threads));
  // int8: convolutions run on u8/s8 activations and s8 weights; between them activations stay
  // f32 so that adds, pools, SE scales and the host ops keep full precision.
  require(options.precision != Precision::I8 || !model.activation_absmax.empty(),
          "runtime model '" + model.graph.name + "' has no activation calibration, so it cannot run in int8: "
          "export it with `leanseg export --format runtime --calibrate DIR`");
  require(options.precision != Precision::BF16 || bf16_is_supported_on_this_cpu(),
          "runtime model '" + model.graph.name + "': bf16 needs a CPU with AVX-512 (oneDNN's bf16 kernels need "
          "avx512_core), and this one has not got it: run it in fp32 or int8");
  act_dt = options.precision == Precision::BF16 ? dt::bf16 : dt::f32;
  require(model.graph.inputs.size() == 1 && model.graph.inputs[0].shape.size() == 4,
          "runtime model '" + model.graph.name + "': expected one [N, C, H, W] input");
  require(model.graph.outputs.size() == 1, "runtime model '" + model.graph.name + "': expected one output");
  // Files were checked by the reader; models built in memory get the same checks here, before
  // the planner divides by strides or indexes by axes.
  check_runtime_graph(model.graph, "runtime model '" + model.graph.name + "'");
  simplify();
  const auto& shape = model.graph.inputs[0].shape;
  channels = static_cast<int>(shape[1]);
  plan(static_cast<int>(shape[2]), static_cast<int>(shape[3]));
}

void Engine::Impl::simplify() {
  // The rewrite reads the weights it rearranges: bring back those dropped after an earlier plan.
  if (source)
    for (auto& t : model.graph.initializers)
      if (t.type == TensorType::F32 && t.f32.empty() && readers[t.name] == 0 && source->find(t.name)) fetch(t);
  SimplifiedGraph simplified = simplify_for_engine(model.graph);
  nodes = std::move(simplified.nodes);
  rewritten_constants = std::move(simplified.new_constants);
  constants.clear(), readers.clear();
  for (const auto& t : model.graph.initializers) constants[t.name] = &t;
  for (const auto& t : rewritten_constants) constants[t.name] = &t;
  for (const auto& n : nodes)
    for (const auto& in : n.inputs) ++readers[in];
  for (const auto& v : model.graph.outputs) ++readers[v.name];
  // Initializers the simplification replaced (e.g. transposed-conv weights rearranged into a
  // 1x1 conv) are dead: free them now.
  for (auto& t : model.graph.initializers)
    if (GraphTensor* dead = droppable(t.name, 0)) drop(*dead);
  rewritten_dropped = false;
}

GraphTensor* Engine::Impl::droppable_rewritten(const std::string& name) {
  if (!source || readers[name] != 1) return nullptr;
  for (auto& t : rewritten_constants)
    if (t.name == name) return &t;
  return nullptr;
}

int Engine::Impl::add_value(const std::string& name, memory::dims dims, bool host) {
  // Every planned activation is bounded, so sizes multiply without overflow and a kernel larger
  // than its padded input (an empty output) is refused here, not by a crash further on.
  if (!host) {
    bool ok = dims.size() == 4 && dims[0] == 1 && dims[1] >= 1 && dims[1] <= kMaxChannels;
    for (size_t a = 2; ok && a < 4; ++a) ok = dims[a] >= 1 && dims[a] <= kMaxImageSide;
    require(ok, where(name) + ": the planned output shape " + dims_text(dims) + " is empty or too large (limits: " +
                    std::to_string(kMaxChannels) + " channels, " + std::to_string(kMaxImageSide) + " pixels per side)");
  }
  Value v;
  v.name = name;
  v.dims = std::move(dims);
  v.host = host;
  if (!host) v.md = act_md(v.dims);
  v.storage = static_cast<int>(values.size());
  v.first = v.last = static_cast<int>(steps.size());
  values.push_back(std::move(v));
  value_of[name] = static_cast<int>(values.size()) - 1;
  return static_cast<int>(values.size()) - 1;
}

GraphTensor* Engine::Impl::droppable(const std::string& name, int readers_needed) {
  if (!source || source->find(name) == nullptr) return nullptr;
  auto r = readers.find(name);
  if ((r == readers.end() ? 0 : r->second) != readers_needed) return nullptr;
  for (auto& t : model.graph.initializers)
    if (t.name == name && t.type == TensorType::F32) return &t;
  return nullptr;
}

void Engine::Impl::fetch(GraphTensor& t) {
  const TensorInfo& info = source->at(t.name);
  require(info.shape == t.shape, "runtime model '" + source->path() + "': tensor '" + t.name + "' changed on disk");
  t.f32.resize(static_cast<size_t>(t.numel()));
  source->read(info, t.f32.data());
}

memory Engine::Impl::constant_memory(const GraphTensor& t, memory::dims dims, memory::format_tag format) {
  require(t.type == TensorType::F32, "runtime model: constant '" + t.name + "' is not float");
  memory m({dims, dt::f32, format}, cpu);
  std::memcpy(m.get_data_handle(), t.f32.data(), t.f32.size() * sizeof(float));
  return m;
}

int Engine::Impl::produce(Step step, int out) {
  steps.push_back(std::move(step));
  values[out].first = static_cast<int>(steps.size()) - 1;
  values[out].last = std::max(values[out].last, values[out].first);
  return out;
}

int Engine::Impl::arena_input(const std::string& name) {
  auto it = value_of.find(name);
  require(it != value_of.end(), where(name) + ": value is not computed by the engine (a constant?)");
  int v = it->second;
  if (!values[v].host) {
    use(v);
    return v;
  }
  // A host tensor read by a oneDNN step: copy it into the arena once (NCHW float → NHWC act).
  const std::string imported = name + "#arena";
  auto found = value_of.find(imported);
  if (found != value_of.end()) {
    use(found->second);
    return found->second;
  }
  memory::dims dims = values[v].dims;
  require(dims.size() == 4, where(name) + ": a " + std::to_string(dims.size()) + "-D tensor cannot feed an image op");
  const int a = add_value(imported, dims, false);
  Step s;
  s.name = imported;
  s.kind = Step::Kind::Host;
  s.inputs = {v};
  s.output = a;  // host → arena copy (see run: Host step with arena output)
  use(v);
  produce(std::move(s), a);
  use(a);
  return a;
}

// The calibrated absmax gives the scale: q = round(x · 255/absmax) in u8 for non-negative values,
// round(x · 127/absmax) in s8 otherwise. One copy per value, shared by every conv reading it.
int Engine::Impl::quantized_input(int v, float* scale) {
  if (values[v].md.data_type() == dt::u8 || values[v].md.data_type() == dt::s8) {  // already quantized
    *scale = values[v].qscale;
    use(v);
    return v;
  }
  const std::string& name = values[v].name;
  // A host tensor copied into the arena ("x#arena") has the calibration of x.
  auto a = model.activation_absmax.find(name.substr(0, name.rfind("#arena")));
  require(a != model.activation_absmax.end(),
          where(name) + ": no int8 calibration for this value (re-export with --calibrate)");
  const bool u8 = values[v].nonnegative;
  *scale = (u8 ? 255.f : 127.f) / std::max(a->second, 1e-8f);
  const std::string qname = name + "#q8";
  auto found = value_of.find(qname);
  if (found != value_of.end()) {
    use(found->second);
    return found->second;
  }
  const int q = add_value(qname, values[v].dims, false);
  values[q].md = memory::desc(values[v].dims, u8 ? dt::u8 : dt::s8, tag::nhwc);
  dnnl::primitive_attr attr;
  attr.set_output_scales(0, {*scale});
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::reorder::primitive_desc pd(cpu, values[v].md, cpu, values[q].md, attr);
  Step s;
  s.name = qname;
  s.primitive = dnnl::reorder(pd);
  s.scratchpad = pd.scratchpad_desc();
  s.value_args = {{DNNL_ARG_FROM, v}, {DNNL_ARG_TO, q}};
  use(v);
  produce(std::move(s), q);
  use(q);
  return q;
}

int Engine::Impl::host_input(const std::string& name) {
  auto it = value_of.find(name);
  if (it == value_of.end()) {
    auto c = constants.find(name);
    require(c != constants.end(), where(name) + ": unknown value");
    // Constants read by host ops: wrap once as a host value.
    const GraphTensor& t = *c->second;
    const int v = add_value(name, to_dims(t.shape), true);
    values[v].tensor = PlainTensor::of(t);
    values[v].last = 1 << 30;  // not in the arena; lifetime irrelevant
    return v;
  }
  const int v = it->second;
  if (!values[v].host && !values[v].mirrored) {
    values[v].mirrored = true;
    values[v].tensor.shape = std::vector<int64_t>(values[v].dims.begin(), values[v].dims.end());
    values[v].tensor.f32.assign(memory::desc(values[v].dims, dt::f32, tag::nchw).get_size() / sizeof(float), 0.f);
    Step s;  // arena → host mirror
    s.name = name + "#host";
    s.kind = Step::Kind::Host;
    s.inputs = {v};
    s.output = v;
    use(v);
    steps.push_back(std::move(s));
  }
  use(v);
  return v;
}

// Conv / ConvTranspose with its following residual Add and activation fused when nothing else
// reads the intermediate values. A conv reading a Concat that nothing else reads runs as one
// conv per concatenated input, each on its slice of the weights' input channels, accumulating
// into the same output (sum post-op): conv(concat(a, b)) = conv_a(a) + conv_b(b). The concat
// is never materialised, which saves its buffer (the largest at a U-Net's full-resolution
// skip) and its copy.
void Engine::Impl::lower_conv(size_t i, std::set<size_t>& fused) {
  const GraphNode& n = nodes[i];
  const bool transposed = n.op == "ConvTranspose";
  const GraphTensor* w = constants.count(n.inputs[1]) ? constants[n.inputs[1]] : nullptr;
  require(w && w->shape.size() == 4, where(n.name) + ": weights must be a constant 4-D tensor");
  GraphTensor* own = droppable(w->name, 1);  // read from the file, packed, then dropped again
  if (own && own->f32.empty()) fetch(*own);
  GraphTensor* derived = droppable_rewritten(w->name);
  const GraphTensor* b = n.inputs.size() > 2 && !n.inputs[2].empty() ? constants[n.inputs[2]] : nullptr;
  // The arena values whose channels, in order, make the conv's input; flagged: a deferred
  // DepthToSpace's input (Winograd convs only).
  std::vector<std::pair<int, bool>> parts;
  auto add_part = [&](const std::string& name) {
    auto deferred = deferred_depth_to_space.find(name);
    if (deferred != deferred_depth_to_space.end()) parts.push_back({deferred->second, true});
    else parts.push_back({arena_input(name), false});
  };
  auto split = split_concats.find(n.inputs[0]);
  if (split != split_concats.end())
    for (const auto& in : split->second) add_part(in);
  else
    add_part(n.inputs[0]);
  auto part_dims = [&](const std::pair<int, bool>& part) { return dims_read(part.first, part.second); };
  memory::dims xd = part_dims(parts[0]);
  for (size_t p = 1; p < parts.size(); ++p) xd[1] += part_dims(parts[p])[1];
  // int8 weight scales stay those of the whole kernel, as the exporter's fake quantization has them.
  const GraphTensor& file_weights = *w;
  GraphTensor centre_weights;
  GraphNode centre_conv;
  if (only_centre_tap_reads_the_map(n, *w, xd)) {
    centre_weights = centre_tap_weights(*w), centre_conv = as_centre_tap_conv(n);
    w = &centre_weights;
  }
  const GraphNode& conv = centre_weights.f32.empty() ? n : centre_conv;
  const int64_t groups = int_attr(conv, "group", 1);
  const auto k = ints_attr(conv, "kernel_shape", {w->shape[2], w->shape[3]});
  const auto st = ints_attr(conv, "strides", {1, 1});
  const auto pads = ints_attr(conv, "pads", {0, 0, 0, 0});
  const auto dil = ints_attr(conv, "dilations", {1, 1});
  const int64_t out_ch = transposed ? w->shape[1] * groups : w->shape[0];
  const int64_t in_ch = transposed ? w->shape[0] : w->shape[1] * groups;
  require(in_ch == xd[1], where(n.name) + ": weights expect " + std::to_string(in_ch) + " input channels, got " +
                              std::to_string(xd[1]));
  memory::dims od = {xd[0], out_ch, 0, 0};
  for (int a = 0; a < 2; ++a) {
    const int64_t ek = dil[a] * (k[a] - 1) + 1;
    od[2 + a] = transposed ? (xd[2 + a] - 1) * st[a] - pads[a] - pads[a + 2] + ek
                           : (xd[2 + a] + pads[a] + pads[a + 2] - ek) / st[a] + 1;
  }

  const Followers f = fusable_followers(i, od, fused);
  const std::string& out_name = f.out_name;
  const int sum_other = f.sum_other;
  const bool has_act = f.has_act, nonnegative_out = f.nonnegative_out;
  Activation act = f.act;

  const bool int8 = options.precision == Precision::I8;
  // int8 output: when only convolutions read the result, write it quantized (scaled by its own
  // calibration) so the next conv reads it directly: no f32 round trip through memory. oneDNN
  // applies the output scale before the post-ops, so a clip's bounds scale with it. Convs split
  // over a concat accumulate in the output, which therefore stays f32.
  std::vector<int64_t> part_channels;
  for (const auto& part : parts) part_channels.push_back(part_dims(part)[1]);
  const bool winograd = winograd_applies(conv, *w, part_channels, od);
  ConvOutput o{od, act_dt, 1.f};
  if (int8 && !winograd && sum_other < 0 && parts.size() == 1 && only_convs_read(out_name) &&
      !read_by_winograd_conv(out_name, od) &&
      (!has_act || act.algorithm != dnnl::algorithm::eltwise_logistic) && model.activation_absmax.count(out_name)) {
    o.type = nonnegative_out ? dt::u8 : dt::s8;
    o.scale = (nonnegative_out ? 255.f : 127.f) / std::max(model.activation_absmax.at(out_name), 1e-8f);
    if (has_act && act.algorithm == dnnl::algorithm::eltwise_clip) act.alpha *= o.scale, act.beta *= o.scale;
  }
  const std::vector<float> weight_scales =
      int8 ? per_channel_weight_scales(file_weights, transposed, groups) : std::vector<float>();
  const int out = add_value(out_name, od, false);
  values[out].nonnegative = nonnegative_out;
  values[out].qscale = o.scale;
  values[out].md = memory::desc(od, o.type, tag::nhwc);
  const int first_write = static_cast<int>(steps.size());  // the addend's copy or the conv
  if (winograd) {  // one step over every part
    if (sum_other >= 0) accumulate_into(out, sum_other, n.name);
    Step s = winograd_step(conv, *w, b, parts, od, f);
    s.output = out;
    produce(std::move(s), out);
    values[out].first = first_write;
  } else {
    int64_t channel_offset = 0;
    for (size_t p = 0; p < parts.size(); ++p) {
      // Part 0 adds the fused residual (if any); later parts add to what earlier ones wrote.
      dnnl::post_ops post;
      if (p > 0 || sum_other >= 0) post.append_sum(1.f);
      if (has_act && p + 1 == parts.size()) post.append_eltwise(1.f, act.algorithm, act.alpha, act.beta);
      if (p == 0 && sum_other >= 0) accumulate_into(out, sum_other, n.name);
      Step s = conv_step(conv, *w, p == 0 ? b : nullptr, parts[p].first, channel_offset, o, post, weight_scales);
      channel_offset += values[parts[p].first].dims[1];
      s.value_args.push_back({DNNL_ARG_DST, out});
      produce(std::move(s), out);
      values[out].first = first_write;
    }
  }
  if (own) drop(*own);
  if (derived) drop(*derived), rewritten_dropped = true;
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
bool Engine::Impl::winograd_applies(const GraphNode& n, const GraphTensor& w, const std::vector<int64_t>& in_channels,
                                    const memory::dims& out_dims) const {
  if (!options.winograd || !winograd_serves_precision() || n.op != "Conv" || out_dims[0] != 1) return false;
  if (int_attr(n, "group", 1) != 1 || w.shape[2] != 3 || w.shape[3] != 3) return false;
  if (ints_attr(n, "strides", {1, 1}) != std::vector<int64_t>{1, 1} ||
      ints_attr(n, "dilations", {1, 1}) != std::vector<int64_t>{1, 1} ||
      ints_attr(n, "pads", {0, 0, 0, 0}) != std::vector<int64_t>{1, 1, 1, 1})
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

// The Winograd step of conv `n` over `inputs` (arena values, flagged when read through
// DepthToSpace) with what fusable_followers took into it. Its weights stay in plain fp32 (the
// kernel transforms them into its scratch on each call).
Step Engine::Impl::winograd_step(const GraphNode& n, const GraphTensor& w, const GraphTensor* b,
                                 const std::vector<std::pair<int, bool>>& inputs, const memory::dims& od,
                                 const Followers& f) {
  Step s;
  s.name = n.name;
  s.kind = Step::Kind::Winograd;
  WinogradShape& shape = s.winograd;
  shape.height = od[2], shape.width = od[3], shape.in_channels = w.shape[1], shape.out_channels = od[1];
  shape.threads = thread_count();
  shape.accumulate = f.sum_other >= 0;
  if (f.has_act && f.act.algorithm == dnnl::algorithm::eltwise_relu) shape.activation = WinogradActivation::Relu;
  if (f.has_act && f.act.algorithm == dnnl::algorithm::eltwise_clip) {
    shape.activation = WinogradActivation::Clip;
    shape.clip_min = f.act.alpha, shape.clip_max = f.act.beta;
  }
  s.weights = winograd_weight_layout(w.f32.data(), shape.out_channels, shape.in_channels);
  if (b) s.bias = b->f32;
  s.winograd_inputs = inputs;
  for (const auto& in : inputs) use(in.first);
  s.scratch_bytes = winograd_scratch_bytes(shape);
  weights += (s.weights.size() + s.bias.size()) * sizeof(float);
  flops += 2.0 * static_cast<double>(od[2] * od[3]) * static_cast<double>(shape.out_channels * shape.in_channels * 9);
  return s;
}

const GraphNode* Engine::Impl::sole_reader_node(const std::string& value) const {
  auto r = readers.find(value);
  if (r == readers.end() || r->second != 1) return nullptr;
  for (const auto& n : nodes)
    if (std::find(n.inputs.begin(), n.inputs.end(), value) != n.inputs.end()) return &n;
  return nullptr;
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
    if (w.shape.size() != 4 || !winograd_applies(*conv, w, channels, {dims[0], w.shape[0], dims[2], dims[3]})) return false;
  }
  return true;
}

// True when a conv that runs on the Winograd kernel reads `value` (of `dims`) as its input: the
// value must then stay f32 in an int8 plan.
bool Engine::Impl::read_by_winograd_conv(const std::string& value, const memory::dims& dims) const {
  for (const auto& n : nodes) {
    if (n.op != "Conv" || n.inputs.empty() || n.inputs[0] != value || !constants.count(n.inputs[1])) continue;
    const GraphTensor& w = *constants.at(n.inputs[1]);
    if (w.shape.size() == 4 && winograd_applies(n, w, {dims[1]}, {dims[0], w.shape[0], dims[2], dims[3]})) return true;
  }
  return false;
}

// The addend of a fused residual add becomes the conv's output before the conv runs: the
// output takes its bytes when it dies here, or a copy of it otherwise.
void Engine::Impl::accumulate_into(int out, int addend, const std::string& node) {
  if (values[addend].last <= static_cast<int>(steps.size()) && readers[values[addend].name] == 1 &&
      addend != value_of[model.graph.inputs[0].name]) {
    values[out].storage = addend;  // in place: the addend dies here
  } else {
    Step copy;  // the addend lives on: copy it into the output first
    copy.name = node + "#addend";
    copy.primitive = dnnl::reorder(dnnl::reorder::primitive_desc(cpu, values[addend].md, cpu, values[out].md));
    copy.value_args = {{DNNL_ARG_FROM, addend}, {DNNL_ARG_TO, out}};
    use(addend);
    produce(std::move(copy), out);
  }
  use(addend);
}

// One oneDNN (de)convolution step reading `x`, which holds input channels
// [channel_offset, channel_offset + channels of x) of the node's weights; packs those weights.
Step Engine::Impl::conv_step(const GraphNode& n, const GraphTensor& w, const GraphTensor* b, int x,
                             int64_t channel_offset, const ConvOutput& o, const dnnl::post_ops& post,
                             const std::vector<float>& weight_scales) {
  const bool transposed = n.op == "ConvTranspose";
  const bool int8 = options.precision == Precision::I8;
  const int64_t groups = int_attr(n, "group", 1);
  const auto k = ints_attr(n, "kernel_shape", {w.shape[2], w.shape[3]});
  const auto st = ints_attr(n, "strides", {1, 1});
  const auto pads = ints_attr(n, "pads", {0, 0, 0, 0});
  const auto dil = ints_attr(n, "dilations", {1, 1});
  const int64_t out_ch = o.dims[1], all_in = transposed ? w.shape[0] : w.shape[1] * groups;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  attr.set_post_ops(post);
  float src_scale = 1.f;
  int src = x;
  if (int8) {
    src = quantized_input(x, &src_scale);
    std::vector<float> out_scales(weight_scales.size());
    for (size_t c = 0; c < out_scales.size(); ++c) out_scales[c] = o.scale / (src_scale * weight_scales[c]);
    attr.set_output_scales(1 << 1, out_scales);  // dst axis 1 = output channels
  }
  const int64_t in_ch = values[x].dims[1];
  require(channel_offset == 0 || (groups == 1 && !transposed),
          where(n.name) + ": only a dense convolution can read a concatenation in parts");
  const memory::dims strides = {st[0], st[1]}, dilates = {dil[0] - 1, dil[1] - 1};
  const memory::dims pad_l = {pads[0], pads[1]}, pad_r = {pads[2], pads[3]};
  memory::dims wd = groups == 1 ? memory::dims{out_ch, in_ch, k[0], k[1]}
                                : memory::dims{groups, out_ch / groups, in_ch / groups, k[0], k[1]};
  const memory::desc w_any(wd, int8 ? dt::s8 : act_dt, tag::any), b_md({out_ch}, dt::f32, tag::a);
  const memory::desc src_md = values[src].md, dst_md(o.dims, o.type, tag::nhwc);
  Step s;
  s.name = n.name;
  memory::desc packed_w;
  // Convolution and transposed convolution share their descriptor's shape in oneDNN.
  auto create = [&](auto kind, dnnl::algorithm algorithm) {
    using Primitive = decltype(kind);
    const auto fwd = dnnl::prop_kind::forward_inference;
    auto d = b ? typename Primitive::desc(fwd, algorithm, src_md, w_any, b_md, dst_md, strides, dilates, pad_l, pad_r)
               : typename Primitive::desc(fwd, algorithm, src_md, w_any, dst_md, strides, dilates, pad_l, pad_r);
    typename Primitive::primitive_desc pd(d, attr, cpu);
    s.primitive = Primitive(pd);
    packed_w = pd.weights_desc();
    s.scratchpad = pd.scratchpad_desc();
  };
  try {
    if (transposed) create(dnnl::deconvolution_forward(), dnnl::algorithm::deconvolution_direct);
    else create(dnnl::convolution_forward(), dnnl::algorithm::convolution_direct);
  } catch (const dnnl::error& e) {
    throw Error(where(n.name) + ": oneDNN has no " + precision_name(options.precision) + " implementation (" + e.what() + ")");
  }
  // Weights: ONNX [O, I/g, kh, kw] (conv) or [I, O/g, kh, kw] (transposed) → the packed layout.
  // The plain weights are read in place (no copy) by the reorder that packs them.
  const tag user_tag = transposed ? (groups == 1 ? tag::iohw : tag::giohw) : (groups == 1 ? tag::oihw : tag::goihw);
  const memory::desc user_md(wd, dt::f32, user_tag);
  memory user_w(user_md, cpu, const_cast<float*>(w.f32.data())), packed(packed_w, cpu);
  if (in_ch != all_in) {  // a dense copy of the slice first
    const memory::desc all({out_ch, all_in, k[0], k[1]}, dt::f32, user_tag);
    memory view(all.submemory_desc(wd, {0, channel_offset, 0, 0}), cpu, const_cast<float*>(w.f32.data()));
    user_w = memory(user_md, cpu);
    dnnl::reorder(view, user_w).execute(stream, view, user_w);
  }
  if (int8) {  // s8 weights: scale each output channel (mask over the output-channel axes)
    dnnl::primitive_attr wattr;
    wattr.set_output_scales(groups == 1 ? 1 : 3, weight_scales);
    dnnl::reorder(dnnl::reorder::primitive_desc(cpu, user_md, cpu, packed_w, wattr)).execute(stream, user_w, packed);
  } else {
    dnnl::reorder(user_w, packed).execute(stream, user_w, packed);
  }
  s.fixed_args[DNNL_ARG_WEIGHTS] = packed;
  weights += packed_w.get_size();
  // Per output pixel of a conv (input pixel of a transposed conv): Cout x Cin/g x kh x kw MACs.
  const memory::dims& pixels = transposed ? values[x].dims : o.dims;
  flops += 2.0 * static_cast<double>(pixels[2] * pixels[3]) * static_cast<double>(out_ch * (in_ch / groups) * k[0] * k[1]);
  if (b) {
    s.fixed_args[DNNL_ARG_BIAS] = constant_memory(*b, {out_ch}, tag::a);
    if (int8) {  // oneDNN 2.x adds the bias to the accumulator before the output scale
      float* bias = static_cast<float*>(s.fixed_args[DNNL_ARG_BIAS].get_data_handle());
      for (int64_t c = 0; c < out_ch; ++c) bias[c] *= src_scale * weight_scales[c];
    }
    weights += b->f32.size() * sizeof(float);
  }
  s.value_args.push_back({DNNL_ARG_SRC, src});
  use(src);
  return s;
}

void Engine::Impl::lower_binary(const GraphNode& n) {
  require(n.inputs.size() == 2, where(n.name) + ": expected two inputs");
  const bool c0 = constants.count(n.inputs[0]), c1 = constants.count(n.inputs[1]);
  auto is_host = [&](const std::string& v) { return value_of.count(v) && values[value_of[v]].host; };
  if ((c0 || is_host(n.inputs[0])) && (c1 || is_host(n.inputs[1]))) return lower_host(n);
  const auto alg = n.op == "Add" ? dnnl::algorithm::binary_add : dnnl::algorithm::binary_mul;
  Step s;
  s.name = n.name;
  memory::desc src1_md;
  int a = -1, b = -1;
  if (c0 || c1) {
    a = arena_input(n.inputs[c0 ? 1 : 0]);
    const GraphTensor& t = *constants[n.inputs[c0 ? 0 : 1]];
    memory::dims d(4, 1);  // numpy broadcasting: align trailing axes
    for (size_t k = 0; k < t.shape.size(); ++k) d[4 - t.shape.size() + k] = t.shape[k];
    require(t.shape.size() <= 4, where(n.name) + ": constant has more than 4 axes");
    s.fixed_args[DNNL_ARG_SRC_1] = constant_memory(t, d, tag::abcd);
    src1_md = s.fixed_args[DNNL_ARG_SRC_1].get_desc();
  } else {
    a = arena_input(n.inputs[0]);
    b = arena_input(n.inputs[1]);
    if (values[a].dims != values[b].dims) {
      // src0 must have the full shape; the other broadcasts.
      memory::dims full = values[a].dims;
      for (size_t k = 0; k < full.size(); ++k) full[k] = std::max(full[k], values[b].dims[k]);
      if (values[a].dims != full) std::swap(a, b);
      require(values[a].dims == full, where(n.name) + ": neither operand has the broadcast shape");
    }
    src1_md = values[b].md;
    s.value_args.push_back({DNNL_ARG_SRC_1, b});
    use(b);
  }
  const memory::desc dst_md = act_md(values[a].dims);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::binary::primitive_desc pd(dnnl::binary::desc(alg, values[a].md, src1_md, dst_md), attr, cpu);
  s.primitive = dnnl::binary(pd);
  s.scratchpad = pd.scratchpad_desc();
  s.value_args.push_back({DNNL_ARG_SRC_0, a});
  use(a);
  const int out = add_value(n.outputs[0], values[a].dims, false);
  // SE gates (sigmoid) times non-negative features stay non-negative.
  values[out].nonnegative = alg == dnnl::algorithm::binary_mul && b >= 0 && values[a].nonnegative && values[b].nonnegative;
  s.value_args.push_back({DNNL_ARG_DST, out});
  produce(std::move(s), out);
}

void Engine::Impl::lower_eltwise(const GraphNode& n) {
  if (value_of.count(n.inputs[0]) && values[value_of[n.inputs[0]]].host) return lower_host(n);
  const int x = arena_input(n.inputs[0]);
  std::vector<Activation> chain;
  Activation act;
  if (activation_of(n, &act)) {
    chain.push_back(act);
  } else {  // HardSigmoid = clip(αx + β, 0, 1)
    chain.push_back({dnnl::algorithm::eltwise_linear, float_attr(n, "alpha", 0.2f), float_attr(n, "beta", 0.5f)});
    chain.push_back({dnnl::algorithm::eltwise_clip, 0.f, 1.f});
  }
  const int out = add_value(n.outputs[0], values[x].dims, false);
  values[out].nonnegative = n.op != "Clip" || float_attr(n, "min", 0) >= 0;
  for (size_t c = 0; c < chain.size(); ++c) {
    Step s;
    s.name = n.name;
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::eltwise_forward::primitive_desc pd(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, chain[c].algorithm, values[x].md, chain[c].alpha,
                                    chain[c].beta),
        attr, cpu);
    s.primitive = dnnl::eltwise_forward(pd);
    s.scratchpad = pd.scratchpad_desc();
    s.value_args = {{DNNL_ARG_SRC, c == 0 ? x : out}, {DNNL_ARG_DST, out}};
    use(x);
    const int first = values[out].first;
    produce(std::move(s), out);
    if (c > 0) values[out].first = first;
  }
}

void Engine::Impl::lower_pool(const GraphNode& n) {
  const int x = arena_input(n.inputs[0]);
  const memory::dims xd = values[x].dims;
  const bool global = n.op == "GlobalAveragePool";
  const auto k = global ? std::vector<int64_t>{xd[2], xd[3]} : ints_attr(n, "kernel_shape", {});
  require(k.size() == 2, where(n.name) + ": MaxPool needs a 2-D kernel_shape");
  const auto st = global ? std::vector<int64_t>{1, 1} : ints_attr(n, "strides", {1, 1});
  const auto pads = global ? std::vector<int64_t>{0, 0, 0, 0} : ints_attr(n, "pads", {0, 0, 0, 0});
  const memory::dims od = {xd[0], xd[1], (xd[2] + pads[0] + pads[2] - k[0]) / st[0] + 1,
                           (xd[3] + pads[1] + pads[3] - k[1]) / st[1] + 1};
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::pooling_forward::primitive_desc pd(
      dnnl::pooling_forward::desc(dnnl::prop_kind::forward_inference,
                                  global ? dnnl::algorithm::pooling_avg_exclude_padding : dnnl::algorithm::pooling_max,
                                  values[x].md, act_md(od), {st[0], st[1]}, {k[0], k[1]}, {pads[0], pads[1]},
                                  {pads[2], pads[3]}),
      attr, cpu);
  Step s;
  s.name = n.name;
  s.primitive = dnnl::pooling_forward(pd);
  s.scratchpad = pd.scratchpad_desc();
  const int out = add_value(n.outputs[0], od, false);
  values[out].md = act_md(od);
  values[out].nonnegative = values[x].nonnegative;
  s.value_args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, out}};
  use(x);
  produce(std::move(s), out);
}

void Engine::Impl::lower_concat(const GraphNode& n) {
  int64_t axis = int_attr(n, "axis", 1);
  if (read_in_parts_by_convs(n)) {
    split_concats[n.outputs[0]] = n.inputs;  // each lower_conv reads the inputs directly
    return;
  }
  auto channel_concat_dims = [&] {
    memory::dims d = values[arena_input(n.inputs[0])].dims;
    for (size_t k = 1; k < n.inputs.size(); ++k) d[1] += values[arena_input(n.inputs[k])].dims[1];
    return d;
  };
  if (options.precision == Precision::I8 && (axis == 1 || axis == -3) && only_convs_read(n.outputs[0]) &&
      model.activation_absmax.count(n.outputs[0]) && !read_by_winograd_conv(n.outputs[0], channel_concat_dims()))
    return lower_quantizing_concat(n);
  Step s;
  s.name = n.name;
  std::vector<memory::desc> srcs;
  memory::dims od;
  for (size_t k = 0; k < n.inputs.size(); ++k) {
    const int v = arena_input(n.inputs[k]);
    if (axis < 0) axis += static_cast<int64_t>(values[v].dims.size());
    if (k == 0) od = values[v].dims;
    else od[axis] += values[v].dims[axis];
    srcs.push_back(values[v].md);
    s.value_args.push_back({DNNL_ARG_MULTIPLE_SRC + static_cast<int>(k), v});
    use(v);
  }
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::concat::primitive_desc pd(act_md(od), static_cast<int>(axis), srcs, cpu, attr);
  s.primitive = dnnl::concat(pd);
  s.scratchpad = pd.scratchpad_desc();
  const int out = add_value(n.outputs[0], od, false);
  values[out].nonnegative = true;
  for (const auto& [arg, v] : s.value_args) values[out].nonnegative = values[out].nonnegative && values[v].nonnegative;
  s.value_args.push_back({DNNL_ARG_DST, out});
  produce(std::move(s), out);
}

// int8, a channel concat that only convolutions read (more than one, else it runs in parts):
// built directly in u8/s8 at its own calibrated scale, one reorder per input into its channel
// slice, instead of an f32 concat and a quantizing copy of it (at a U-Net's full-resolution
// decoder stage: three passes over the largest map become one pass over its inputs).
void Engine::Impl::lower_quantizing_concat(const GraphNode& n) {
  std::vector<int> inputs;
  memory::dims od;
  bool nonnegative = true;
  for (const auto& name : n.inputs) {
    inputs.push_back(arena_input(name));
    const memory::dims& d = values[inputs.back()].dims;
    if (od.empty()) od = d;
    else od[1] += d[1];
    nonnegative = nonnegative && values[inputs.back()].nonnegative;
  }
  const float scale = (nonnegative ? 255.f : 127.f) / std::max(model.activation_absmax.at(n.outputs[0]), 1e-8f);
  const int out = add_value(n.outputs[0], od, false);
  values[out].md = memory::desc(od, nonnegative ? dt::u8 : dt::s8, tag::nhwc);
  values[out].nonnegative = nonnegative;
  values[out].qscale = scale;
  const int first_write = static_cast<int>(steps.size());
  int64_t offset = 0;
  for (int v : inputs) {
    const memory::desc slice = values[out].md.submemory_desc(values[v].dims, {0, offset, 0, 0});
    offset += values[v].dims[1];
    const bool quantized = values[v].md.data_type() == dt::u8 || values[v].md.data_type() == dt::s8;
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    attr.set_output_scales(0, {quantized ? scale / values[v].qscale : scale});
    dnnl::reorder::primitive_desc pd(cpu, values[v].md, cpu, slice, attr);
    Step s;
    s.name = n.name + "#q8";
    s.primitive = dnnl::reorder(pd);
    s.scratchpad = pd.scratchpad_desc();
    s.value_args = {{DNNL_ARG_FROM, v}, {DNNL_ARG_TO, out}};
    s.views = {{DNNL_ARG_TO, slice}};
    use(v);
    produce(std::move(s), out);
    values[out].first = first_write;
  }
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
      return w.shape.size() == 4 && winograd_applies(*c, w, channels, {dims[0], w.shape[0], dims[2], dims[3]});
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

// DepthToSpace(2, DCR) in NHWC is a pure permutation of bytes: [N, H, W, (dy, dx, C)] →
// [N, H, dy, W, dx, C]. One oneDNN reorder between two strided 6-D views of the two buffers.
void Engine::Impl::lower_depth_to_space(const GraphNode& n) {
  require(int_attr(n, "blocksize", 0) == 2, where(n.name) + ": only DepthToSpace with blocksize 2 is supported");
  const int x = arena_input(n.inputs[0]);
  const memory::dims xd = values[x].dims;
  const int64_t N = xd[0], C = xd[1] / 4, H = xd[2], W = xd[3];
  // Not built when a Winograd conv reads it (a U-Net decoder's upsampled half): the kernel reads
  // the low-resolution map through the permutation, and one full-resolution map is never stored.
  if (read_by_winograd_concat(n.outputs[0], {N, C, 2 * H, 2 * W})) {
    deferred_depth_to_space[n.outputs[0]] = x;
    return;
  }
  const dt type = values[x].md.data_type();
  const memory::dims view = {N, H, W, 2, 2, C};
  memory::desc from(view, type, memory::dims{H * W * 4 * C, W * 4 * C, 4 * C, 2 * C, C, 1});
  memory::desc to(view, type, memory::dims{4 * H * W * C, 4 * W * C, 2 * C, 2 * W * C, C, 1});
  Step s;
  s.name = n.name;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::reorder::primitive_desc pd(cpu, from, cpu, to, attr);
  s.primitive = dnnl::reorder(pd);
  s.scratchpad = pd.scratchpad_desc();
  const int out = add_value(n.outputs[0], {N, C, 2 * H, 2 * W}, false);
  values[out].md = memory::desc({N, C, 2 * H, 2 * W}, type, tag::nhwc);
  values[out].nonnegative = values[x].nonnegative;
  values[out].qscale = values[x].qscale;
  s.value_args = {{DNNL_ARG_FROM, x}, {DNNL_ARG_TO, out}};
  s.views = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
  use(x);
  produce(std::move(s), out);
}

int Engine::Impl::converted(int v, dt type) {
  if (values[v].md.data_type() == type) return v;
  return copied(v, values[v].name + "#" + std::to_string(static_cast<int>(type)),
                memory::desc(values[v].dims, type, tag::nhwc));
}

// A new arena value `name` holding `v` reordered into `md` (int8 values scaled back to float).
int Engine::Impl::copied(int v, const std::string& name, const memory::desc& md) {
  const int c = add_value(name, values[v].dims, false);
  values[c].md = md;
  values[c].nonnegative = values[v].nonnegative;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (values[v].qscale != 1.f && md.data_type() != values[v].md.data_type())
    attr.set_output_scales(0, {1.f / values[v].qscale});  // int8 → float
  dnnl::reorder::primitive_desc pd(cpu, values[v].md, cpu, md, attr);
  Step s;
  s.name = name;
  s.primitive = dnnl::reorder(pd);
  s.scratchpad = pd.scratchpad_desc();
  s.value_args = {{DNNL_ARG_FROM, v}, {DNNL_ARG_TO, c}};
  use(v);
  produce(std::move(s), c);
  use(c);
  return c;
}

// Depthwise kernel-2 stride-2 transposed conv with the engine's own f32 kernel; other
// precisions convert around it (a memory pass each way, far cheaper than oneDNN's kernel).
void Engine::Impl::lower_depthwise_upsample(const GraphNode& n) {
  const GraphTensor* w = constants.at(n.inputs[1]);
  const GraphTensor* b = n.inputs.size() > 2 && !n.inputs[2].empty() ? constants.at(n.inputs[2]) : nullptr;
  const int x = converted(arena_input(n.inputs[0]), dt::f32);
  const memory::dims xd = values[x].dims;
  const int64_t C = xd[1];
  require(w->shape[0] == C, where(n.name) + ": weights for " + std::to_string(w->shape[0]) + " channels, input has " +
                                std::to_string(C));
  Step s;
  s.name = n.name;
  s.kind = Step::Kind::Upsample;
  s.weights.resize(4 * C);
  for (int64_t c = 0; c < C; ++c)
    for (int d = 0; d < 4; ++d) s.weights[d * C + c] = w->f32[c * 4 + d];
  if (b) s.bias = b->f32;
  weights += (s.weights.size() + s.bias.size()) * sizeof(float);
  flops += 2.0 * static_cast<double>(xd[2] * xd[3] * C) * 4;  // depthwise, kernel 2x2
  const memory::dims od = {xd[0], C, 2 * xd[2], 2 * xd[3]};
  const bool direct = act_dt == dt::f32;
  const int y = add_value(direct ? n.outputs[0] : n.outputs[0] + "#f32", od, false);
  values[y].md = memory::desc(od, dt::f32, tag::nhwc);
  s.inputs = {x};
  s.output = y;
  use(x);
  produce(std::move(s), y);
  if (!direct) {
    const int out = converted(y, act_dt);
    values[out].name = n.outputs[0];
    value_of[n.outputs[0]] = out;
  }
}

// Small non-image ops on host tensors with the reference implementation. Output shapes are
// found by running the op once on zeros now (Shape and Reshape depend only on shapes).
void Engine::Impl::lower_host(const GraphNode& n) {
  Step s;
  s.name = n.name;
  s.kind = Step::Kind::Host;
  s.node = &n;
  for (const auto& in : n.inputs) s.inputs.push_back(host_input(in));
  std::vector<const PlainTensor*> ins;  // after every host_input: `values` may have grown
  for (int v : s.inputs) ins.push_back(&values[v].tensor);
  std::vector<PlainTensor> probe = reference_op(n, ins);
  require(probe.size() == 1, where(n.name) + ": host ops must have one output");
  const int out = add_value(n.outputs[0], to_dims(probe[0].shape), true);
  values[out].tensor = std::move(probe[0]);
  s.output = out;
  produce(std::move(s), out);
}

void Engine::Impl::plan(int h, int w) {
  const int d = model.size_divisor;
  require(h > 0 && w > 0 && h % d == 0 && w % d == 0,
          "runtime model '" + model.graph.name + "': input size " + std::to_string(h) + "x" + std::to_string(w) +
              " (HxW) is not a positive multiple of " + std::to_string(d));
  check_image_size(h, w, "runtime model '" + model.graph.name + "'");
  height = h, width = w;
  if (rewritten_dropped) simplify();
  values.clear(), value_of.clear(), steps.clear(), split_concats.clear(), deferred_depth_to_space.clear();
  weights = 0, flops = 0;
  const ScopedOmpThreads omp_threads(thread_count());

  const memory::dims image_dims = {1, channels, h, w};
  const int image = add_value(model.graph.inputs[0].name, image_dims, false);
  input_user = memory({image_dims, dt::f32, tag::nchw}, cpu, DNNL_MEMORY_NONE);
  Step in;
  in.name = "input";
  in.primitive = dnnl::reorder(dnnl::reorder::primitive_desc(cpu, input_user.get_desc(), cpu, values[image].md));
  in.value_args = {{DNNL_ARG_TO, image}};
  produce(std::move(in), image);

  std::set<size_t> fused;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (fused.count(i)) continue;
    const GraphNode& n = nodes[i];
    try {
      if (n.op == "Conv" || n.op == "ConvTranspose") lower_conv(i, fused);
      else if (n.op == "Add" || n.op == "Mul") lower_binary(n);
      else if (n.op == "Relu" || n.op == "Sigmoid" || n.op == "Clip" || n.op == "HardSigmoid") lower_eltwise(n);
      else if (n.op == "MaxPool" || n.op == "GlobalAveragePool") lower_pool(n);
      else if (n.op == "Concat") lower_concat(n);
      else if (n.op == "DepthToSpace") lower_depth_to_space(n);
      else if (n.op == "DepthwiseUpsample2x") lower_depthwise_upsample(n);
      else lower_host(n);
    } catch (const dnnl::error& e) {
      throw Error(where(n.name) + " (" + n.op + "): oneDNN refused it: " + e.what());
    }
  }
  const std::string& out_name = model.graph.outputs[0].name;
  require(value_of.count(out_name), "runtime model '" + model.graph.name + "': output '" + out_name + "' never computed");
  output_value = value_of[out_name];
  values[output_value].last = static_cast<int>(steps.size());
  bind();
}

// Arena offsets for every arena value and scratchpad, then the memory objects and argument maps.
void Engine::Impl::bind() {
  std::map<int, size_t> request_of;
  std::vector<ArenaRequest> requests;
  for (size_t v = 0; v < values.size(); ++v) {
    if (values[v].host) continue;
    const int r = storage_root(static_cast<int>(v));
    auto it = request_of.find(r);
    if (it == request_of.end()) {
      request_of[r] = requests.size();
      requests.push_back({values[r].md.get_size(), values[v].first, values[v].last});
    } else {
      auto& q = requests[it->second];
      q.first_step = std::min(q.first_step, values[v].first);
      q.last_step = std::max(q.last_step, values[v].last);
      q.bytes = std::max(q.bytes, values[v].md.get_size());
    }
  }
  // Scratchpads (oneDNN's, and the Winograd kernel's transformed weights and tiles: MBs) live
  // for one step: planned in the arena too, they reuse bytes of activations dead at that step.
  std::map<size_t, size_t> scratch_request_of;  // step → request
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    const size_t bytes = s.kind == Step::Kind::Primitive ? s.scratchpad.get_size() : s.scratch_bytes;
    if (bytes > 0) {
      scratch_request_of[i] = requests.size();
      requests.push_back({bytes, static_cast<int>(i), static_cast<int>(i)});
    }
  }
  const ArenaPlan plan = plan_arena(requests);
  // Refused before anything is allocated: an input size or graph that needs more memory than
  // any deployment has would otherwise end in bad_alloc (or the OOM killer) minutes later.
  const uint64_t estimate = plan.total_bytes + 64 + static_cast<uint64_t>(height) * width * sizeof(float);
  if (estimate > kMaxArenaBytes) {
    char gib[32];
    std::snprintf(gib, sizeof gib, "%.1f", static_cast<double>(estimate) / (1ull << 30));
    throw Error("runtime model '" + model.graph.name + "': input " + std::to_string(height) + "x" +
                std::to_string(width) + " (HxW) needs an estimated " + gib + " GiB of activation memory, more than the " +
                std::to_string(kMaxArenaBytes >> 30) + " GiB limit");
  }
  arena.assign(plan.total_bytes + 64, 0);
  output.assign(static_cast<size_t>(height) * width, 0.f);
  unsigned char* base = arena.data() + (64 - reinterpret_cast<uintptr_t>(arena.data()) % 64) % 64;
  for (size_t v = 0; v < values.size(); ++v)
    if (!values[v].host)
      values[v].mem = memory(values[v].md, cpu, base + plan.offsets[request_of[storage_root(static_cast<int>(v))]]);

  for (size_t i = 0; i < steps.size(); ++i) {
    Step& s = steps[i];
    auto r = scratch_request_of.find(i);
    if (s.kind == Step::Kind::Winograd) {
      s.scratch = reinterpret_cast<float*>(base + plan.offsets[r->second]);
      s.winograd_sources.clear();
      for (const auto& [v, depth_to_space] : s.winograd_inputs)
        s.winograd_sources.push_back({static_cast<const float*>(values[v].mem.get_data_handle()),
                                      depth_to_space ? values[v].dims[1] / 4 : values[v].dims[1], depth_to_space});
    }
    if (s.kind != Step::Kind::Primitive) continue;
    s.args = s.fixed_args;
    for (const auto& [arg, v] : s.value_args) {
      auto view = s.views.find(arg);
      s.args[arg] = view == s.views.end() ? values[v].mem : memory(view->second, cpu, values[v].mem.get_data_handle());
    }
    if (r != scratch_request_of.end()) s.args[DNNL_ARG_SCRATCHPAD] = memory(s.scratchpad, cpu, base + plan.offsets[r->second]);
  }
  steps[0].args[DNNL_ARG_FROM] = input_user;
  if (!values[output_value].host)
    output_user = memory({values[output_value].dims, dt::f32, tag::nchw}, cpu, output.data());
}

namespace {
// What runs a step, for profiles: oneDNN's primitive kind and implementation for primitives
// ("convolution brgconv:avx512_core").
std::string step_kind(const Step& s) {
  switch (s.kind) {
    case Step::Kind::Winograd: return "winograd";
    case Step::Kind::Upsample: return "depthwise-upsample";
    case Step::Kind::Host: return s.node ? "host:" + s.node->op : "host-copy";
    case Step::Kind::Primitive: break;
  }
  const char* impl = nullptr;
  dnnl_primitive_desc_query(s.primitive.get_primitive_desc(), dnnl_query_impl_info_str, 0, &impl);
  return std::string(dnnl_prim_kind2str(static_cast<dnnl_primitive_kind_t>(s.primitive.get_kind()))) + " " +
         (impl ? impl : "?");
}
}  // namespace

void Engine::Impl::run(const float* input, std::vector<StepProfile>* profile) {
  const ScopedOmpThreads omp_threads(thread_count());
  input_user.set_data_handle(const_cast<float*>(input));
  if (profile) profile->clear();
  for (auto& s : steps) {
    if (!profile) {
      run_step(s);
      continue;
    }
    profile->push_back({s.name, step_kind(s), 0});
    const auto start = std::chrono::steady_clock::now();
    run_step(s);
    stream.wait();
    profile->back().ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  if (values[output_value].host) {
    std::copy(values[output_value].tensor.f32.begin(), values[output_value].tensor.f32.end(), output.begin());
  } else {
    dnnl::reorder(values[output_value].mem, output_user).execute(stream, values[output_value].mem, output_user);
  }
  stream.wait();
}

void Engine::Impl::run_step(Step& s) {
  if (s.kind == Step::Kind::Primitive) {
    s.primitive.execute(stream, s.args);
    return;
  }
  Value& out = values[s.output];
  if (s.kind == Step::Kind::Winograd) {
    winograd_conv3x3(s.winograd, s.winograd_sources.data(), static_cast<int>(s.winograd_sources.size()),
                     s.weights.data(), s.bias.empty() ? nullptr : s.bias.data(),
                     static_cast<float*>(out.mem.get_data_handle()), s.scratch);
    return;
  }
  if (s.kind == Step::Kind::Upsample) {
    const Value& in = values[s.inputs[0]];
    depthwise_upsample2x(static_cast<const float*>(in.mem.get_data_handle()), static_cast<float*>(out.mem.get_data_handle()),
                         s.weights.data(), s.bias.empty() ? nullptr : s.bias.data(), in.dims[2], in.dims[3], in.dims[1]);
    return;
  }
  if (s.node == nullptr) {  // a copy between the arena and a host tensor
    Value& in = values[s.inputs[0]];
    memory host({in.dims, dt::f32, tag::nchw}, cpu, in.tensor.f32.data());
    if (!in.host) dnnl::reorder(in.mem, host).execute(stream, in.mem, host);  // arena → host mirror
    else dnnl::reorder(host, out.mem).execute(stream, host, out.mem);         // host → arena
    return;
  }
  std::vector<const PlainTensor*> ins;
  for (int v : s.inputs) ins.push_back(&values[v].tensor);
  out.tensor = std::move(reference_op(*s.node, ins)[0]);
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;
Engine::~Engine() = default;

Engine Engine::load(const std::string& path, const EngineOptions& options) {
  RuntimeModel model = read_runtime_model(path);
  auto impl = std::make_unique<Impl>();
  impl->source = std::make_unique<SafeTensorsFile>(SafeTensorsFile::open_lazy(path));
  impl->init(std::move(model), options);
  return Engine(std::move(impl));
}

Engine Engine::from_model(RuntimeModel model, const EngineOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->init(std::move(model), options);
  return Engine(std::move(impl));
}

void Engine::set_input_size(int height, int width) {
  if (height == impl_->height && width == impl_->width) return;
  const int old_height = impl_->height, old_width = impl_->width;
  try {
    impl_->plan(height, width);
  } catch (const Error&) {
    impl_->plan(old_height, old_width);  // a refused size leaves the engine as it was, runnable
    throw;
  }
}
int Engine::input_channels() const { return impl_->channels; }
int Engine::input_height() const { return impl_->height; }
int Engine::input_width() const { return impl_->width; }
const std::vector<float>& Engine::run_profiled(const float* input, std::vector<StepProfile>* profile) {
  impl_->run(input, profile);
  return impl_->output;
}
const std::vector<float>& Engine::run(const float* input) {
  impl_->run(input);
  return impl_->output;
}
void Engine::run_batch(const float* input, int count, float* logits_out) {
  require(count >= 0, "Engine::run_batch: count must be >= 0, got " + std::to_string(count));
  const size_t in = static_cast<size_t>(impl_->channels) * impl_->height * impl_->width;
  const size_t out = static_cast<size_t>(impl_->height) * impl_->width;
  for (int i = 0; i < count; ++i) {
    impl_->run(input + i * in);
    std::copy(impl_->output.begin(), impl_->output.end(), logits_out + i * out);
  }
}
const RuntimeModel& Engine::model() const { return impl_->model; }
const EngineOptions& Engine::options() const { return impl_->options; }
size_t Engine::arena_bytes() const { return impl_->arena.size(); }
size_t Engine::weight_bytes() const { return impl_->weights; }
size_t Engine::winograd_layers() const {
  return static_cast<size_t>(std::count_if(impl_->steps.begin(), impl_->steps.end(),
                                           [](const Step& s) { return s.kind == Step::Kind::Winograd; }));
}
double Engine::flops() const { return impl_->flops; }

}  // namespace leanseg::runtime
