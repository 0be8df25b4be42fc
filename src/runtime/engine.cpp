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
// engine_impl.h says which file holds which part.
#include <algorithm>
#include <unordered_map>

#include "engine_impl.h"
#include "leanseg/safetensors.h"
#include "leanseg/error.h"
#include "leanseg/limits.h"

namespace leanseg::runtime {

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

bool bf16_is_supported_on_this_cpu() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

void argmax_labels(const float* logits, int channels, size_t pixels, uint8_t* labels_out) {
  require(channels >= 1 && channels <= 256, "argmax_labels: channels must be in [1, 256], got " + std::to_string(channels));
  if (channels == 1) {  // binary: sigmoid(x) > 0.5 exactly when x > 0
    for (size_t i = 0; i < pixels; ++i) labels_out[i] = logits[i] > 0.f ? 1 : 0;
    return;
  }
  for (size_t i = 0; i < pixels; ++i) {
    int best = 0;
    float highest = logits[i];
    for (int c = 1; c < channels; ++c)
      if (logits[c * pixels + i] > highest) highest = logits[c * pixels + i], best = c;  // first of equal maxima
    labels_out[i] = static_cast<uint8_t>(best);
  }
}

bool int8_is_exact_on_this_cpu() {
  return __builtin_cpu_supports("avx512vnni") || __builtin_cpu_supports("avxvnni");
}

void Engine::Impl::init(RuntimeModel m, const EngineOptions& o, int h, int w) {
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
  plan(h > 0 ? h : static_cast<int>(shape[2]), w > 0 ? w : static_cast<int>(shape[3]));
  if (options.adapt_threads && thread_count() > 1) adapter = std::make_unique<ThreadAdapter>(thread_count());
}

const std::unordered_map<std::string, Engine::Impl::Lowering>& Engine::Impl::lowerings() {
  const Lowering conv = [](Impl& engine, size_t node, std::set<size_t>& fused) { engine.lower_conv(node, fused); };
  const Lowering binary = lower_node<&Impl::lower_binary>, eltwise = lower_node<&Impl::lower_eltwise>,
                 pool = lower_node<&Impl::lower_pool>;
  static const std::unordered_map<std::string, Lowering> table = {
      {"Conv", conv},
      {"ConvTranspose", conv},
      {"Add", binary},
      {"Mul", binary},
      {"Relu", eltwise},
      {"Sigmoid", eltwise},
      {"Clip", eltwise},
      {"HardSigmoid", eltwise},
      {"MaxPool", pool},
      {"GlobalAveragePool", pool},
      {"Concat", lower_node<&Impl::lower_concat>},
      {"DepthToSpace", lower_node<&Impl::lower_depth_to_space>},
      {"DepthwiseUpsample2x", lower_node<&Impl::lower_depthwise_upsample>},
  };
  return table;
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
  PrimitiveStep in;
  in.primitive = dnnl::reorder(dnnl::reorder::primitive_desc(cpu, input_user.get_desc(), cpu, values[image].md));
  in.value_args = {{DNNL_ARG_TO, image}};
  produce({"input", std::move(in)}, image);

  std::set<size_t> fused;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (fused.count(i)) continue;
    const GraphNode& n = nodes[i];
    try {
      const auto lowering = lowerings().find(n.op);
      if (lowering != lowerings().end()) lowering->second(*this, i, fused);
      else lower_host(n);
    } catch (const dnnl::error& e) {
      throw Error(where(n.name) + " (" + n.op + "): oneDNN refused it: " + e.what());
    }
  }
  const std::string& out_name = model.graph.outputs[0].name;
  require(value_of.count(out_name), "runtime model '" + model.graph.name + "': output '" + out_name + "' never computed");
  output_value = value_of[out_name];
  check_declared_output_shape(values[output_value].dims);
  values[output_value].last = static_cast<int>(steps.size());
  bind();
}

// A file whose declared output shape is not what its graph computes is inconsistent (edited or
// corrupt): refused rather than trusted by a caller sizing its buffers from the declaration.
// Channels always; height and width when planned at the declared input size; -1 is dynamic.
void Engine::Impl::check_declared_output_shape(const memory::dims& computed) const {
  const auto& declared = model.graph.outputs[0].shape;
  const auto& input = model.graph.inputs[0].shape;
  const bool at_declared_size = input[2] == height && input[3] == width;
  bool ok = declared.size() == computed.size();
  for (size_t i = 1; ok && i < declared.size(); ++i)
    if (declared[i] >= 0 && (i == 1 || at_declared_size)) ok = declared[i] == computed[i];
  require(ok, "runtime model '" + model.graph.name + "': output '" + model.graph.outputs[0].name + "' is declared as " +
                  shape_str(declared) + " but the graph computes " + shape_str(computed));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;
Engine::~Engine() = default;

Engine Engine::load(const std::string& path, const EngineOptions& options) {
  RuntimeModel model = read_runtime_model(path);
  auto impl = std::make_unique<Impl>();
  impl->source = std::make_shared<const SafeTensorsFile>(SafeTensorsFile::open_lazy(path));
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
  impl_->fewer.reset();  // planned again at the new size when next needed (it shares the arena)
  try {
    impl_->plan(height, width);
    if (impl_->adapter) impl_->adapter = std::make_unique<ThreadAdapter>(impl_->thread_count());  // new run times
  } catch (const Error&) {
    impl_->plan(old_height, old_width);  // a refused size leaves the engine as it was, runnable
    throw;
  }
}
int Engine::input_channels() const { return impl_->channels; }
int Engine::input_height() const { return impl_->height; }
int Engine::input_width() const { return impl_->width; }
std::vector<int64_t> Engine::output_shape() const {
  const auto& dims = impl_->values[impl_->output_value].dims;
  return {dims.begin(), dims.end()};
}
const std::vector<float>& Engine::run_profiled(const float* input, std::vector<StepProfile>* profile) {
  return impl_->run(input, profile);
}
const std::vector<float>& Engine::run(const float* input) { return impl_->run(input); }
int Engine::last_run_threads() const { return impl_->last_run_threads; }
double Engine::last_run_waited_share() const { return impl_->last_run_waited_share; }
int Engine::output_channels() const { return static_cast<int>(impl_->values[impl_->output_value].dims[1]); }
void Engine::run_batch(const float* input, int count, float* logits_out) {
  require(count >= 0, "Engine::run_batch: count must be >= 0, got " + std::to_string(count));
  const size_t in = static_cast<size_t>(impl_->channels) * impl_->height * impl_->width;
  const size_t out = impl_->output.size();
  for (int i = 0; i < count; ++i) {
    const std::vector<float>& logits = impl_->run(input + i * in);
    std::copy(logits.begin(), logits.end(), logits_out + i * out);
  }
}
void Engine::run_labels(const float* input, uint8_t* labels_out) {
  const std::vector<float>& logits = impl_->run(input);
  const size_t pixels = static_cast<size_t>(impl_->height) * impl_->width;
  require(logits.size() == static_cast<size_t>(output_channels()) * pixels,
          "Engine::run_labels: the model's output " + shape_str(output_shape()) + " is not K logits per input pixel");
  argmax_labels(logits.data(), output_channels(), pixels, labels_out);
}
const RuntimeModel& Engine::model() const { return impl_->model; }
const EngineOptions& Engine::options() const { return impl_->options; }
size_t Engine::arena_bytes() const { return impl_->arena->size(); }
size_t Engine::weight_bytes() const { return impl_->weights; }
size_t Engine::winograd_layers() const {
  return static_cast<size_t>(std::count_if(impl_->steps.begin(), impl_->steps.end(),
                                           [](const Step& s) { return std::holds_alternative<WinogradStep>(s.work); }));
}
double Engine::flops() const { return impl_->flops; }

}  // namespace leanseg::runtime
