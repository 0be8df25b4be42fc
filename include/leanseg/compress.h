// Compression (SPEC C1, C3, C4, C6): magnitude pruning, weight quantization (the framework
// seed's uniform formula and integer affine quantization, with straight-through fake
// quantization for training); fine-tuning with pruning masks kept is the training layer's
// (finetune.h). Compact storage of the results in model files: WeightStorage in model_file.h.
// See docs/compression.md.
//
// What this does and does not buy: pruned or quantized weights make the model *file* smaller;
// LibTorch still computes with dense fp32 weights (dequantized at load), so they do not make
// LibTorch inference faster. Real int8 speed comes from the runtime (leanseg export --format
// runtime --calibrate; leanseg-infer --precision int8).
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "leanseg/model_file.h"

namespace leanseg {

// The weights compression acts on: the weights of Conv2d, ConvTranspose2d and Linear modules
// (not biases, not BatchNorm/GroupNorm parameters), by dotted name, in registration order.
std::vector<std::pair<std::string, torch::Tensor>> compressible_weights(const torch::nn::Module& m);

// --- Magnitude pruning (C1) -----------------------------------------------------------------

enum class PruneScope { Global, Layer };
// "global" or "layer"; throws Error naming --prune-scope otherwise.
PruneScope prune_scope_from_string(const std::string& s);
const char* prune_scope_name(PruneScope s);

struct PruneOptions {
  double sparsity = 0;  // p ∈ [0, 1): the share of the selected weights set to zero
  // Global: one θ = percentile(|W|, p) over all selected weights; Layer: one θ per weight tensor.
  PruneScope scope = PruneScope::Global;
  // Parameter-name prefixes to prune (e.g. "decoder."); empty = every trainable compressible
  // weight (frozen ones are then skipped and listed in PruneResult::skipped_frozen).
  std::vector<std::string> layers;
  // Also prune frozen (requires_grad = false) weights. Without it, selecting a frozen weight
  // through `layers` is an error: the frozen encoder cannot recover during fine-tuning.
  bool allow_frozen = false;
};

struct WeightMask {
  std::string name;     // parameter name
  torch::Tensor mask;   // bool, the weight's shape; false = pruned
  int64_t pruned = 0;   // zeros in mask
  double threshold = 0;  // θ used for this tensor (the global θ in global scope)
};

struct PruneResult {
  std::vector<WeightMask> masks;
  int64_t selected = 0;  // weights considered (N)
  int64_t pruned = 0;    // zeros in the masks: round(p·N) globally, Σ round(p·N_l) per layer
  double threshold = 0;  // global scope: θ; layer scope: unused (see WeightMask::threshold)
  std::vector<std::string> skipped_frozen;
};

// Masks that zero exactly round(p·N) weights (per scope group): the smallest |w|; weights equal
// to θ are pruned in position order (tensor order, then flat index) until the count is exact,
// so the result is deterministic. Throws Error for p outside [0, 1), a selection that matches no
// weight, a frozen weight selected without allow_frozen, or non-finite weights.
PruneResult magnitude_masks(const torch::nn::Module& m, const PruneOptions& o);
// W ← W ⊙ M for every mask (no autograd). Throws Error if a mask names no parameter of m.
void apply_masks(torch::nn::Module& m, const std::vector<WeightMask>& masks);
// magnitude_masks + apply_masks.
PruneResult magnitude_prune(torch::nn::Module& m, const PruneOptions& o);

// --- Structured pruning (C2) ---------------------------------------------------------------

// Removes whole channels: in every channel group of the model (SegmentationModelImpl::
// channel_groups: convs with their BatchNorm, rewired through SE blocks, concat skips, residual
// adds and transposed convs) the round(ratio · C) least important channels (Σ|w_c| times the
// BatchNorm scale |γ_c|/σ_c) are cut from every layer that produces or reads them. The result
// is a smaller dense model whose outputs equal those of the original with the same channels
// zeroed (mask_structured). Groups touching frozen weights are skipped unless allow_frozen.
struct StructuredPruneOptions {
  double ratio = 0;  // [0, 1): share of each group's channels removed (at least 1 channel stays)
  bool allow_frozen = false;
};

struct StructuredPlan {
  std::vector<ChannelGroup> groups;
  std::vector<std::vector<int64_t>> removed;  // per group: channel indices, ascending
  std::vector<std::string> skipped_frozen;    // groups left alone because they touch frozen weights
  int64_t channels = 0, removed_channels = 0;  // over the planned groups
};

// Throws Error for a ratio outside [0, 1) or a model without prunable channel groups.
StructuredPlan structured_plan(const SegmentationModelImpl& m, const StructuredPruneOptions& o);
// The reference the pruned model must match: the same model with the planned channels zeroed
// in every slot (weights, biases, BatchNorm γ and β), in place.
void mask_structured(SegmentationModelImpl& m, const StructuredPlan& plan);
// Cuts the planned channels out of m (in place): new, smaller tensors and layer options.
void apply_structured(SegmentationModelImpl& m, const StructuredPlan& plan);

// --- Quantization (C4) ----------------------------------------------------------------------

// Throws Error "unknown bit-width B (8, 4, 2)" for other widths.
void check_bits(int bits);

// The framework seed's formula for "lower precision (8, 4, 2 bit)" floating-point quantization,
// exactly as written there (§1.2.2): X_q = round(X × (2^b − 1)) / (2^b − 1). It has no scale:
// values are snapped to a grid of step 1/(2^b − 1), which suits data in [0, 1]; weights much
// smaller than the step collapse to 0. Error bound: |X − X_q| ≤ 1 / (2 (2^b − 1)).
torch::Tensor seed_uniform_quantize(const torch::Tensor& x, int bits);
double seed_uniform_error_bound(int bits);

// Integer affine quantization (seed §1.2.2, "Integer Quantization"):
//   s = (max − min) / (2^b − 1), z = round(−min / s), q = clamp(round(x / s) + z, 0, 2^b − 1),
//   x̂ = (q − z) · s.
// min/max are taken over the tensor (per tensor) or over each index of axis 0 (per channel:
// output channels of Conv2d/Linear, input channels of ConvTranspose2d). The range is widened
// to include 0, as PyTorch's observers do, so that 0 (pruned weights) is represented exactly
// and z fits in [0, 2^b − 1]. Then |x − x̂| ≤ s / 2 for every element.
struct AffineQuantized {
  torch::Tensor codes;       // uint8, x's shape, values in [0, 2^b − 1]
  torch::Tensor scale;       // float32, [C] per channel or [1]
  torch::Tensor zero_point;  // uint8, like scale
  int bits = 8;
  bool per_channel = false;
};
AffineQuantized affine_quantize(const torch::Tensor& x, int bits, bool per_channel);
// (q − z) · s as float32 with the codes' shape.
torch::Tensor affine_dequantize(const AffineQuantized& q);

// Fake quantization with the straight-through estimator: the forward value is the
// quantized-dequantized x, the gradient passes through unchanged: x + (x̂ − x).detach().
torch::Tensor fake_quant_affine(const torch::Tensor& x, int bits, bool per_channel);
torch::Tensor fake_quant_seed(const torch::Tensor& x, int bits);

// One line describing a model file's compression (from extra.compression and its storage), e.g.
// "magnitude pruning 50% (global) → fine-tune 2 epochs → int4 per channel"; "" for plain files.
std::string describe_compression(const LoadedModel& m);

}  // namespace leanseg
