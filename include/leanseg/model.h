// Segmentation models: an encoder + decoder + head, assembled by name from the registry
// (segmentation_models_pytorch style). Every model maps [N, C, H, W] float images to logits:
// [N, 1, H, W] for binary segmentation (num_classes 2; sigmoid at inference) or [N, K, H, W]
// for K >= 3 classes, background being class 0 (softmax at inference).
#pragma once
#include <torch/torch.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace leanseg {

class GraphBuilder;  // src/models/export_graph.h

// Architecture name + options. `options` holds the architecture-specific knobs; the registry
// fills in every default so a saved config fully determines the model.
struct ModelConfig {
  std::string arch;
  int in_channels = 1;
  // Classes including background: 2 is binary (one logit channel, the files written before
  // multi-class existed); K >= 3 gives a K-channel head. Written to JSON only when not 2, so
  // binary model files are unchanged.
  int num_classes = 2;
  nlohmann::json options = nlohmann::json::object();

  // Channels of the logits: 1 for binary, num_classes otherwise.
  int output_channels() const { return num_classes == 2 ? 1 : num_classes; }

  nlohmann::json to_json() const;
  static ModelConfig from_json(const nlohmann::json& j);
};

// What one named stage of a model produced during a recorded forward pass.
struct StageRecord {
  std::string name;
  std::vector<int64_t> shape;  // output shape
  double flops = 0;            // per image (batch 1), see ops.h for the convention
};

// A stage is a named group of parameters (by name prefix) and an output in forward().
struct StageDef {
  std::string name;
  std::vector<std::string> param_prefixes;
};

// Structured pruning (SPEC C2): a set of channels that must be removed together. Every slot is
// a range [offset, offset + channels) along `axis` of one parameter or buffer: the outputs of
// the producing convs and their BatchNorm, and every place those channels are read (the next
// conv's input axis, a concat's slice of it, an SE block's FCs, the other operand of a residual
// add, depthwise convs passing them through). Channel c of the group is removed from all slots.
struct ChannelSlot {
  std::string tensor;  // parameter or buffer name
  int axis = 0;
  int64_t offset = 0;
};
struct ChannelGroup {
  std::string name;
  int64_t channels = 0;
  std::vector<ChannelSlot> slots;
  // Importance of channel c (SPEC C2): Σ over `producers` of Σ|W[c]| (the weight's slice along
  // its output axis), times |γ_c| / sqrt(var_c + eps) of the BatchNorm `bn` following it, if any.
  struct Producer {
    std::string weight;
    int axis = 0;
    std::string bn;  // BatchNorm2d module path or ""
  };
  std::vector<Producer> producers;
};

class SegmentationModelImpl : public torch::nn::Module {
 public:
  explicit SegmentationModelImpl(ModelConfig config) : config_(std::move(config)) {}

  // Logits [N, config().output_channels(), H, W]. Throws Error if the input has the wrong rank, channel count or a size
  // that is not a multiple of size_divisor().
  torch::Tensor forward(const torch::Tensor& x);
  // Same as forward, also recording every stage's output shape and FLOPs.
  torch::Tensor forward_recorded(const torch::Tensor& x, std::vector<StageRecord>& records);

  const ModelConfig& config() const { return config_; }
  virtual std::vector<StageDef> stages() const = 0;
  virtual int size_divisor() const { return 32; }
  // The channel groups structured pruning may shrink (see ChannelGroup); channels whose removal
  // the architecture cannot express (GroupNorm, attention heads, identity residuals) are absent.
  virtual std::vector<ChannelGroup> channel_groups() const { return {}; }

  // Tensors whose shape differs from the architecture's (after structured pruning), by name.
  // Saved in model files so load_model rebuilds the smaller model.
  const std::map<std::string, std::vector<int64_t>>& resized_tensors() const { return resized_; }
  // Gives the named tensors new shapes (contents undefined: load or copy into them next) and
  // updates the owning modules' options (channels, groups). Throws Error for unknown names.
  void resize_tensors(const std::map<std::string, std::vector<int64_t>>& shapes);
  // Replaces the named tensors (same rank, any sizes) and updates module options; records them.
  void replace_tensors(const std::map<std::string, torch::Tensor>& values);
  // Emits the eval-mode forward pass applied to graph value `image` (BatchNorm folded, Dropout
  // removed) and returns the logits value. Mirrors run(); see include/leanseg/graph_export.h.
  virtual std::string emit_graph(GraphBuilder& g, const std::string& image) const = 0;

  // Frozen parts get no gradients and keep BatchNorm in eval mode even in train().
  void set_frozen_prefixes(std::vector<std::string> prefixes);
  const std::vector<std::string>& frozen_prefixes() const { return frozen_prefixes_; }
  // Parts whose weights train but whose BatchNorm layers stay in eval mode, keeping their
  // running statistics: fine-tuning a pretrained encoder at small batches, where batch
  // statistics would replace the ones the rest of the model was trained on.
  void set_statistics_frozen_prefixes(std::vector<std::string> prefixes);
  const std::vector<std::string>& statistics_frozen_prefixes() const { return statistics_frozen_prefixes_; }
  void train(bool on = true) override;

 protected:
  virtual torch::Tensor run(const torch::Tensor& x, std::vector<StageRecord>* records) = 0;

  // Runs fn as stage `name`, recording its output shape and FLOPs when records != nullptr.
  template <class Fn>
  torch::Tensor stage(std::vector<StageRecord>* records, const char* name, Fn&& fn);

  ModelConfig config_;

 private:
  void check_input(const torch::Tensor& x) const;
  std::vector<std::string> frozen_prefixes_;
  std::vector<std::string> statistics_frozen_prefixes_;
  std::map<std::string, std::vector<int64_t>> resized_;
};
TORCH_MODULE(SegmentationModel);

// Registry ---------------------------------------------------------------------------------
std::vector<std::string> model_names();
bool is_model_name(const std::string& name);
std::string model_description(const std::string& name);
// Builds `config.arch` with config.options completed by the architecture's defaults.
// Throws Error listing the known names when arch is unknown, or naming a bad option.
SegmentationModel create_model(const ModelConfig& config);
SegmentationModel create_model(const std::string& arch, int in_channels = 1);

// Parameter counts over a whole module.
struct ParamCounts {
  int64_t total = 0, trainable = 0, frozen = 0, nonzero = 0;
};
ParamCounts count_params(const torch::nn::Module& m);

}  // namespace leanseg

#include "leanseg/model_stage_impl.h"
