// The engine's plan for one input size (engine_impl.h): the values it computes and the steps
// that compute them, in order. Private to src/runtime.
#pragma once
#include <dnnl.hpp>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "leanseg/graph.h"
#include "reference.h"
#include "winograd.h"

namespace leanseg::runtime {

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
  // A graph value, or a copy the engine made of value `copy_of` for steps that read it in
  // another form: a host tensor imported into the arena, an int8 copy, another dtype. Copies
  // are found through the original (`imported`, `quantized`); their names only label them.
  enum class Role { Graph, Imported, Quantized, Converted } role = Role::Graph;
  int copy_of = -1;
  int imported = -1;   // host values: their arena copy, once made
  int quantized = -1;  // arena values: their u8/s8 copy (int8 plans), once made
};

// The steps of a plan, one kind per way of computing: a oneDNN primitive, one of the engine's
// own kernels (winograd.h, kernels.h), a copy between the arena and a host tensor, or an op
// run on the host by the reference interpreter. Each kind holds only what it needs.
struct PrimitiveStep {
  dnnl::primitive primitive;
  std::vector<std::pair<int, int>> value_args;     // DNNL_ARG_* → value index
  std::map<int, memory::desc> views;               // DNNL_ARG_* → another view of that value's bytes
  std::unordered_map<int, memory> fixed_args;      // weights, bias, constants
  memory::desc scratchpad;
  std::unordered_map<int, memory> args;            // bound after planning
};

// Winograd F(2x2, 3x3) conv: weights [Cin][3][3][Cout], bias [Cout], the input values (read
// through DepthToSpace when flagged) and the scratch planned in the arena.
struct WinogradStep {
  WinogradShape shape;
  std::vector<float> weights, bias;
  std::vector<std::pair<int, bool>> inputs;
  int output = -1;
  size_t scratch_bytes = 0;
  std::vector<WinogradSource> sources;  // bound after planning
  float* scratch = nullptr;             // bound after planning
};

// Depthwise kernel-2 stride-2 transposed conv (kernels.h): taps [4][C] and bias [C].
struct UpsampleStep {
  std::vector<float> weights, bias;
  int input = -1, output = -1;
};

// An arena value's host mirror (input arena → output host), or a host value imported into the
// arena (input host → output arena).
struct CopyStep {
  int input = -1, output = -1;
};

// A node run on host tensors by the reference interpreter (shapes, reshapes, small ops).
struct HostOpStep {
  const GraphNode* node = nullptr;
  std::vector<int> inputs;
  int output = -1;
};

struct Step {
  std::string name;  // node name (error messages, profiling)
  std::variant<PrimitiveStep, WinogradStep, UpsampleStep, CopyStep, HostOpStep> work;
};

inline memory::dims to_dims(const std::vector<int64_t>& shape) { return memory::dims(shape.begin(), shape.end()); }

inline std::string dims_text(const memory::dims& d) {
  std::string out = "[";
  for (size_t i = 0; i < d.size(); ++i) out += (i ? ", " : "") + std::to_string(d[i]);
  return out + "]";
}

}  // namespace leanseg::runtime
