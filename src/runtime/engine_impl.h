// Engine::Impl, the state of a loaded engine and the planner that fills it (engine.cpp). Its
// members are defined by responsibility:
//   engine.cpp          loading, planning (the lowering loop over the simplified graph), the API
//   engine_weights.cpp  the graph's constants: simplification, dropping and re-reading weights
//   engine_values.cpp   values and the copies steps need of them (arena, int8, host, dtype)
//   engine_fusion.cpp   fusion analysis: followers taken into convs, Winograd, concats read in parts
//   lower_conv.cpp      Conv / ConvTranspose steps (oneDNN or Winograd) with their weights packed
//   lower_ops.cpp       every other op's steps
//   engine_bind.cpp     arena offsets and oneDNN argument maps
//   engine_run.cpp      execution and profiling
// Private to src/runtime.
#pragma once
#include <omp.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "leanseg/runtime.h"
#include "leanseg/runtime_file.h"
#include "leanseg/safetensors.h"
#include "node_attributes.h"
#include "plan.h"
#include "thread_adapter.h"

namespace leanseg::runtime {

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

// The activation a node applies, when oneDNN can fuse it as an eltwise post-op.
struct Activation {
  dnnl::algorithm algorithm;
  float alpha = 0, beta = 0;
};
inline bool activation_of(const GraphNode& n, Activation* act) {
  if (n.op == "Relu") return *act = {dnnl::algorithm::eltwise_relu, 0, 0}, true;
  if (n.op == "Sigmoid") return *act = {dnnl::algorithm::eltwise_logistic, 0, 0}, true;
  if (n.op == "Clip") return *act = {dnnl::algorithm::eltwise_clip, float_attr(n, "min", 0), float_attr(n, "max", 0)}, true;
  return false;
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
  // Activations and scratchpads (bind). Shared with the plan for fewer threads, `fewer`: only
  // one of them runs at a time, so they use the same bytes (sized for the larger).
  std::shared_ptr<std::vector<unsigned char>> arena = std::make_shared<std::vector<unsigned char>>();
  size_t weights = 0;
  double flops = 0;  // convolutions at the planned size
  memory input_user, input_mem;  // user's planar f32 buffer → arena image
  int output_value = -1;
  memory output_user;
  std::vector<float> output;

  // The .lsr file the model came from (Engine::load): conv weights are dropped from memory once
  // packed and read again from it if a new input size needs them packed anew. Null for models
  // built in memory (from_model), which keep their weights.
  std::shared_ptr<const SafeTensorsFile> source;

  // Contention (EngineOptions::adapt_threads; engine_threads.cpp): this plan runs on
  // thread_count() threads; `fewer` is the same model planned for adapter->next_threads() when
  // that is less, built when first needed. Null adapter: a fixed thread count.
  std::unique_ptr<ThreadAdapter> adapter;
  TeamWaitClock wait_clock;
  std::unique_ptr<Impl> fewer;
  int last_run_threads = 0;
  double last_run_waited_share = -1;

  // Plans at height x width, or at the file's input size when 0.
  void init(RuntimeModel m, const EngineOptions& o, int height = 0, int width = 0);
  void plan(int h, int w);
  void check_declared_output_shape(const memory::dims& computed) const;
  int thread_count() const { return options.threads > 0 ? options.threads : omp_get_num_procs(); }
  // One run on the plan the adapter picks (this one without an adapter); returns its output.
  const std::vector<float>& run(const float* input, std::vector<StepProfile>* profile = nullptr);
  void run_plan(const float* input, std::vector<StepProfile>* profile);  // this plan, as planned
  void run_step(Step& s);
  Impl& plan_for_threads(int threads);

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
  bool only_convs_read(const std::string& value) const;
  int host_input(const std::string& name);   // value index with a host tensor (mirroring arena values)
  void use(int value) { values[value].last = static_cast<int>(steps.size()); }
  int produce(Step step, int out);
  int storage_root(int v) const {
    while (values[v].storage != v) v = values[v].storage;
    return v;
  }

  // How each op the engine runs in the arena is lowered to steps (engine.cpp); the others run on
  // the host (lower_host). A lowering may take the nodes after `node` into its steps (a conv
  // fuses its add and activation) and marks them in `fused`.
  using Lowering = void (*)(Impl& engine, size_t node, std::set<size_t>& fused);
  static const std::unordered_map<std::string, Lowering>& lowerings();
  // A lowering that needs only its node.
  template <void (Impl::*lower)(const GraphNode&)>
  static void lower_node(Impl& engine, size_t node, std::set<size_t>&) {
    (engine.*lower)(engine.nodes[node]);
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
  bool winograd_applies(const GraphNode& n, const ConvAttributes& attrs, const GraphTensor& w,
                        const std::vector<int64_t>& in_channels, const memory::dims& out_dims) const;
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
  WinogradStep winograd_step(const GraphTensor& w, const GraphTensor* b,
                     const std::vector<std::pair<int, bool>>& inputs, const memory::dims& od, const Followers& f);
  PrimitiveStep conv_step(const GraphNode& n, const ConvAttributes& attrs, const GraphTensor& w, const GraphTensor* b, int x,
                 int64_t channel_offset, const ConvOutput& o, const dnnl::post_ops& post,
                 const std::vector<float>& weight_scales);
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

}  // namespace leanseg::runtime
