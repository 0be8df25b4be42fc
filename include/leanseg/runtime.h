// leanseg_runtime: LibTorch-free CPU inference of exported models (`.lsr`, runtime_file.h) on
// oneDNN. Weights are pre-packed once at load, activations live in oneDNN's blocked layouts in
// one arena planned at load (no allocation per inference), convolutions carry their bias,
// activation and residual add as fused post-ops.
#pragma once
#include <cstddef>
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

struct EngineOptions {
  Precision precision = Precision::F32;
  int threads = 0;  // 0: every core
  // fp32 only: dense 3x3 stride-1 convolutions on maps of 64x64 and more (32x32 up to 256 -> 256
  // channels) run on the engine's own Winograd F(4x4, 3x3) kernel (src/runtime/winograd.h;
  // 1.85-2.6x faster than oneDNN's direct kernels there, its scratch planned in the arena).
  // Results differ from direct convolution by float rounding (~1e-5 relative). On by default;
  // off: oneDNN's direct convolutions everywhere.
  bool winograd = true;
};

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

  // input: C×H×W floats (planar, batch 1), normalised as model().preprocessing says.
  // Returns H×W logits; the reference stays valid until the next run or set_input_size.
  const std::vector<float>& run(const float* input);
  // As run, timing every step: `profile` receives one entry per step, in execution order.
  const std::vector<float>& run_profiled(const float* input, std::vector<StepProfile>* profile);

  const RuntimeModel& model() const;
  const EngineOptions& options() const;
  size_t arena_bytes() const;   // activations and scratchpads, planned for the current size
  size_t winograd_layers() const;  // convolutions on the Winograd kernel in the current plan
  size_t weight_bytes() const;  // packed weights held by the engine
  // 2 × multiply-adds of the convolutions (incl. transposed) at the current input size, in
  // `leanseg info`'s convention; the small host ops (linear attention's matmuls, GroupNorm) are
  // not counted.
  double flops() const;

 private:
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace leanseg::runtime
