// Encoders of the zoo (segmentation_models_pytorch style): a backbone that turns an image into
// feature maps at growing reductions, which a decoder (src/models/encoder_unet.cpp) joins by
// skip connections. A decoder reads every width it needs from the encoder, so adding a
// backbone is one class plus one entry of the encoder registry (encoders() below), and every
// U-Net preset over it ("unet-" + encoder name) exists at once.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "leanseg/model.h"

namespace leanseg {

class GraphBuilder;         // export_graph.h
class ChannelGroupBuilder;  // channel_groups.h
enum class StemInit;        // mobilenet_v2.h

class EncoderImpl : public torch::nn::Module {
 public:
  // Stage i maps the output of stage i - 1 (the image for i = 0) to feature map i, which has
  // out_channels()[i] channels at 1 / reductions()[i] of the input's size.
  virtual std::vector<int64_t> out_channels() const = 0;
  virtual std::vector<int64_t> reductions() const = 0;
  size_t num_stages() const { return out_channels().size(); }
  virtual torch::Tensor forward_stage(size_t i, const torch::Tensor& x) = 0;
  // Every stage's feature map, finest first.
  std::vector<torch::Tensor> features(const torch::Tensor& x);
  // The eval-mode graph of stage i applied to value x; `path` is the encoder's module path.
  virtual std::string emit_stage(GraphBuilder& g, const std::string& path, size_t i, const std::string& x) const = 0;
  // Parameter name prefixes of stage i, relative to the encoder ("layer1.", "features.3.").
  virtual std::vector<std::string> stage_prefixes(size_t i) const = 0;
  // The channel groups structured pruning may shrink inside the encoder (names under `path`).
  // Channels leaving a stage are not among them: the decoder reads them as skips.
  virtual void channel_groups(ChannelGroupBuilder& b, const std::string& path) const = 0;
  // Loads torchvision-named weights (the backbone's own names: "conv1.weight", "features.0.0.weight")
  // from a safetensors file; an RGB stem becomes an in_channels one by `stem`. Throws Error
  // naming the file and tensor on any mismatch or missing tensor.
  virtual void load_pretrained(const std::string& path, StemInit stem) = 0;
};

// A segmentation model built around a registered or pretrained encoder (module path "encoder").
class EncoderOwner {
 public:
  virtual ~EncoderOwner() = default;
  virtual EncoderImpl& encoder() = 0;
  virtual StemInit stem_init() const = 0;  // the model's option "stem_init"
};
// The stages of a U-Net over `encoder` (module path "encoder") up to its bottleneck: enc0 (the
// model's own full-resolution conv) and enc1..enc5, the encoder's stages; for stages().
std::vector<StageDef> encoder_stage_defs(const EncoderImpl& encoder);
// The model options "encoder_frozen" (no gradients, BatchNorm in eval mode) and
// "encoder_bn_frozen" (weights train, BatchNorm keeps its running statistics) applied to the
// module path "encoder."; for the constructors of models with a pretrained encoder.
void freeze_encoder_as_configured(SegmentationModelImpl& model);
// Loads torchvision-named ImageNet weights into the model's encoder (train --encoder-weights).
// Throws Error when the model has none, or as EncoderImpl::load_pretrained.
void load_encoder_weights(SegmentationModelImpl& model, const std::string& path);

// Encoder registry: name → description and factory (input channels → encoder).
struct EncoderEntry {
  std::string name;
  std::string description;
  std::function<std::shared_ptr<EncoderImpl>(int64_t in_channels)> make;
};
const std::vector<EncoderEntry>& encoders();
// Throws Error listing the known encoders.
const EncoderEntry& find_encoder(const std::string& name);

// Loads the tensors of a torchvision-named safetensors file into `module`, whose tensors are
// named `prefix` + torchvision name: every file tensor under one of the `required` name
// prefixes must exist in the module (same shape) and every module tensor under them must be in
// the file; tensors under `optional` (a classifier head) are loaded only when the module has
// them; any other name is an error. The stem tensor `stem_key` ([out, 3, k, k]) is adapted to
// the module's input channels by `stem`. `arch` names the backbone in messages.
struct TorchvisionLayout {
  std::string arch;  // "MobileNetV2", "ResNet"
  std::vector<std::string> required, optional;
  std::string stem_key;
};
void load_torchvision_weights(torch::nn::Module& module, const std::string& path, const TorchvisionLayout& layout,
                              const std::string& prefix, StemInit stem);

}  // namespace leanseg
