// leanseg_runtime: LibTorch-free CPU inference of exported models (`.lsr`, runtime_file.h) on
// oneDNN. Weights are pre-packed once at load, activations live in oneDNN's blocked layouts in
// one arena planned at load (no allocation per inference), convolutions carry their bias,
// activation and residual add as fused post-ops.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "leanseg/runtime_file.h"

namespace leanseg::runtime {

enum class Precision { F32, BF16, I8 };
// "fp32", "bf16", "int8"; throws Error for anything else.
Precision precision_from_name(const std::string& name);
const char* precision_name(Precision p);

// One step of a profiled run (Engine::run_profiled): the graph node it computes, what runs it
// (a oneDNN primitive and its implementation, e.g. "convolution brgconv:avx512_core", or
// "winograd", "depthwise-upsample", "host:Softmax"), and its wall time.
struct StepProfile {
  std::string name, kind;
  double ms = 0;
};

// True when oneDNN has bf16 kernels for this CPU (AVX-512: avx512_core); Precision::BF16
// otherwise fails at load with a message saying so.
bool bf16_is_supported_on_this_cpu();

// True when this CPU has VNNI (AVX512-VNNI or AVX-VNNI). Without it oneDNN's int8 convolutions
// on s8 inputs halve the weights internally (its verbose log shows "sa0.5") so that 16-bit sums
// cannot saturate: results then differ from exact fake quantization by ~1e-2 of the logit range
// (docs/runtime.md) instead of ~4e-8.
bool int8_is_exact_on_this_cpu();

// True when this CPU is one the engine's Winograd kernel was measured faster than oneDNN's direct
// convolutions on: AVX-512, or AVX2 with FMA (docs/runtime.md, "Speed"). The default of
// EngineOptions::winograd.
bool winograd_is_fast_on_this_cpu();

struct EngineOptions {
  Precision precision = Precision::F32;
  int threads = 0;  // 0: every core
  // fp32 (and int8 on CPUs without VNNI, where those convs then stay fp32: oneDNN's int8 kernels
  // are slower there): dense 3x3 stride-1 convolutions on maps of 64x64 and more (32x32 up to
  // 256 -> 256 channels) run on the engine's own Winograd F(4x4, 3x3) kernel (src/runtime/winograd.h;
  // 1.85-2.6x faster than oneDNN's direct kernels there, its scratch planned in the arena).
  // Results differ from direct convolution by float rounding (~1e-5 relative). On by default
  // where it is measured to pay: CPUs with AVX-512 or AVX2 + FMA (winograd_is_fast_on_this_cpu).
  // true asks for it on any CPU; false: oneDNN's direct convolutions everywhere.
  bool winograd = winograd_is_fast_on_this_cpu();
  // With more than one thread: when the engine's threads spend a large share of a run waiting
  // for a core (another process holds it: the kernel's run delay of each thread, measured per
  // run), run on half of them, trying all of them again from time to time (every 1 s, doubling
  // to 8 s while the cores stay busy). Beside one busy process on 2 cores M1 took 2.0-3.4x its
  // idle time on 2 threads and ~1.0x on one (docs/results.md). The plan for fewer threads is
  // built on first need (a few ms to a few hundred, once) and holds its own packed weights (the
  // arena is shared: M1 +37 MB).
  // The two plans' outputs may differ in the last bits on some CPUs (oneDNN may choose its
  // blocking by thread count; for M1 on a Zen 5 they were bit-identical in fp32, bf16 and int8):
  // false for a fixed count and bit-reproducible runs everywhere.
  bool adapt_threads = true;
};

// Threading contract:
// - An Engine is not thread-safe: one engine must not be used from two threads at once (its
//   activations live in one arena). Different engines are independent and may run at the same
//   time on different host threads, each with its own thread count.
// - Planning (load, set_input_size) and running use EngineOptions::threads OpenMP threads
//   (oneDNN runs on OpenMP in Debian), or fewer while other processes hold the cores
//   (EngineOptions::adapt_threads; last_run_threads() says how many a run used). The calling
//   thread's OpenMP thread count (omp_get_max_threads) is set for the call and restored before
//   it returns; nothing else process-wide is changed (no environment, allocator or signal
//   settings). Adapting reads the kernel's statistics of the engine's own threads
//   (/proc/self/task/*/schedstat) and runs one parallel region to find them; it never changes
//   threads it did not create for its own work.
// - Called from inside the host's own OpenMP parallel region, oneDNN's regions are nested and
//   run on one thread (OpenMP's default): give each host thread its own engine instead.
class Engine {
 public:
  // Loads and validates a .lsr file and plans for the file's input size.
  static Engine load(const std::string& path, const EngineOptions& options = {});
  static Engine from_model(RuntimeModel model, const EngineOptions& options = {});
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;
  ~Engine();

  // Re-plans primitives and the arena for another input size (multiples of the size divisor;
  // Error otherwise). Cheap when the size is unchanged.
  void set_input_size(int height, int width);
  int input_channels() const;
  int input_height() const;
  int input_width() const;

  // The output of one run at the current input size, [1, K, H', W']: [1, K, H, W] logits for
  // leanseg's segmentation models (K = 1 for binary models).
  std::vector<int64_t> output_shape() const;
  // Channels of the logits: 1 for binary models, K for K-class models.
  int output_channels() const;

  // input: C×H×W floats (planar, batch 1), normalised as model().preprocessing says.
  // Returns the output (output_shape(), row-major: K×H×W logits, planar, for leanseg's
  // segmentation models); the reference stays valid until the next run or set_input_size.
  const std::vector<float>& run(const float* input);
  // As run, then the label of every pixel into `labels_out` (H×W bytes): argmax_labels of the
  // logits, i.e. the class index of K-class models, 0/1 (logit > 0) for binary ones.
  void run_labels(const float* input, uint8_t* labels_out);
  // Batch: `count` images one after another (count x C x H x W floats in, count outputs of
  // output_shape() into `logits_out`). The plan is for batch 1: images reuse its primitives and arena, so a
  // batch costs count single runs and no extra memory (no larger-batch kernels yet).
  void run_batch(const float* input, int count, float* logits_out);
  // As run, timing every step: `profile` receives one entry per step, in execution order.
  const std::vector<float>& run_profiled(const float* input, std::vector<StepProfile>* profile);
  // OpenMP threads the last run used: EngineOptions::threads (all cores for 0), or fewer when it
  // adapted to contention; 0 before the first run.
  int last_run_threads() const;
  // Share of the last run's thread time its threads spent runnable but waiting for a core
  // (0: the cores were free; 0.3: a third of it lost to other processes); -1 when unknown
  // (fixed thread count, or a kernel without per-thread scheduler statistics).
  double last_run_waited_share() const;

  const RuntimeModel& model() const;
  const EngineOptions& options() const;
  size_t arena_bytes() const;   // activations and scratchpads, planned for the current size
  size_t winograd_layers() const;  // convolutions on the Winograd kernel in the current plan
  size_t weight_bytes() const;  // packed weights held by the engine
  // 2 × multiply-adds of the convolutions (incl. transposed) at the current input size, in
  // `leanseg info`'s convention; the small host ops (linear attention's matmuls, GroupNorm) are
  // not counted. These are the multiply-adds the plan executes: a dilated conv whose off-centre
  // taps read only padding at this size runs (and counts) as its centre tap, so M1's 8.78 GFLOP
  // of `leanseg info` at 256x256 are 8.44 here.
  double flops() const;

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Planar logits (channels × pixels) → one label per pixel: channels 1: 1 where the logit is > 0
// (probability > 0.5); channels K >= 2: the index of the largest logit (the first of equal
// maxima, as torch.argmax). Throws Error for channels outside [1, 256].
void argmax_labels(const float* logits, int channels, size_t pixels, uint8_t* labels_out);

// How long an idle OpenMP thread of this process spins at a barrier before it sleeps, measured:
// the CPU time one thread burns while the other sleeps `wait_ms` (so at most wait_ms). ~0 with
// OMP_WAIT_POLICY=passive, ~wait_ms with active, ~1 ms under leanseg's executables' bounded
// spinning (src/util/openmp_wait_policy.c). For `leanseg doctor`.
double measure_openmp_spin_ms(int wait_ms = 30);
// Tasks runnable right now on the whole machine (/proc/loadavg's 4th field, this one included);
// -1 when unknown. More than the cores means the engine's threads will wait for a core.
int runnable_tasks();

}  // namespace leanseg::runtime
