#include "encoder.h"

#include "leanseg/error.h"
#include "leanseg/safetensors.h"
#include "leanseg/tensor_io.h"
#include "mobilenet_v2.h"
#include "resnet.h"
#include "zoo.h"

namespace leanseg {
namespace {

bool starts_with_any(const std::string& name, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes)
    if (name.rfind(p, 0) == 0) return true;
  return false;
}

// An RGB stem kernel [out, 3, k, k] for `channels` input channels (see StemInit).
torch::Tensor adapt_stem(const torch::Tensor& rgb, int64_t channels, StemInit init) {
  if (channels == 3) return rgb;
  auto base = init == StemInit::Mean ? rgb.mean(1, true) : rgb.sum(1, true) / static_cast<double>(channels);
  return base.repeat({1, channels, 1, 1}).contiguous();
}

}  // namespace

std::vector<torch::Tensor> EncoderImpl::features(const torch::Tensor& x) {
  std::vector<torch::Tensor> out;
  torch::Tensor y = x;
  for (size_t i = 0; i < num_stages(); ++i) out.push_back(y = forward_stage(i, y));
  return out;
}

std::vector<StageDef> encoder_stage_defs(const EncoderImpl& encoder) {
  std::vector<StageDef> s = {{"enc0", {"enc0."}}};
  for (size_t i = 0; i < encoder.num_stages(); ++i) {
    StageDef d{"enc" + std::to_string(i + 1), {}};
    for (const auto& p : encoder.stage_prefixes(i)) d.param_prefixes.push_back("encoder." + p);
    s.push_back(std::move(d));
  }
  return s;
}

void freeze_encoder_as_configured(SegmentationModelImpl& model) {
  const ModelConfig& c = model.config();
  if (option<bool>(c, "encoder_frozen"))
    model.set_frozen_prefixes({"encoder."});
  else if (option<bool>(c, "encoder_bn_frozen"))
    model.set_statistics_frozen_prefixes({"encoder."});
}

void load_encoder_weights(SegmentationModelImpl& model, const std::string& path) {
  auto* owner = dynamic_cast<EncoderOwner*>(&model);
  require(owner != nullptr, "--encoder-weights: model '" + model.config().arch + "' has no pretrained encoder");
  owner->encoder().load_pretrained(path, owner->stem_init());
}

const std::vector<EncoderEntry>& encoders() {
  static const std::vector<EncoderEntry> table = {
      {"mobilenet_v2", "MobileNetV2 encoder (torchvision layout, 2.2M params; the M1/M4 backbone)",
       [](int64_t in) { return std::make_shared<MobileNetV2FeaturesImpl>(in); }},
      {"resnet18", "ResNet-18 encoder (torchvision layout; BasicBlocks [2, 2, 2, 2], 11.2M params)",
       [](int64_t in) { return std::make_shared<ResNetEncoderImpl>(ResNetDepth::R18, in); }},
      {"resnet34", "ResNet-34 encoder (torchvision layout; BasicBlocks [3, 4, 6, 3], 21.3M params)",
       [](int64_t in) { return std::make_shared<ResNetEncoderImpl>(ResNetDepth::R34, in); }},
  };
  return table;
}

const EncoderEntry& find_encoder(const std::string& name) {
  std::string known;
  for (const auto& e : encoders()) {
    if (e.name == name) return e;
    known += (known.empty() ? "" : ", ") + e.name;
  }
  throw Error("unknown encoder '" + name + "' (known: " + known + ")");
}

void load_torchvision_weights(torch::nn::Module& module, const std::string& path, const TorchvisionLayout& layout,
                              const std::string& prefix, StemInit stem) {
  const SafeTensorsFile file = SafeTensorsFile::open(path);
  auto params = module.named_parameters(true);
  auto buffers = module.named_buffers(true);
  int64_t loaded = 0;
  for (const auto& t : file.tensors()) {
    const bool required = starts_with_any(t.name, layout.required);
    if (!required && !starts_with_any(t.name, layout.optional))
      throw Error("'" + path + "': unexpected tensor '" + t.name + "' (not a torchvision " + layout.arch + " key)");
    const std::string name = prefix + t.name;
    torch::Tensor* dst = params.find(name);
    if (!dst) dst = buffers.find(name);
    if (!dst) {
      if (!required) continue;  // encoder-only models have no classifier
      throw Error("'" + path + "': tensor '" + t.name + "' has no counterpart" + (prefix.empty() ? "" : " '" + name + "'") +
                  " in the model (a " + layout.arch + " of another depth or width?)");
    }
    torch::Tensor src = tensor_from_safetensors(file, t);
    if (t.name == layout.stem_key) {
      require(src.dim() == 4 && src.size(1) == 3,
              "'" + path + "': stem '" + t.name + "' should be [" + std::to_string(dst->size(0)) + ", 3, " +
                  std::to_string(dst->size(2)) + ", " + std::to_string(dst->size(3)) + "], got " + shape_string(src));
      src = adapt_stem(src, dst->size(1), stem);
    }
    copy_checked(*dst, src, "'" + path + "': tensor '" + t.name + "'");
    ++loaded;
  }
  // Every encoder tensor of the model must have come from the file.
  std::vector<std::string> all = layout.required;
  all.insert(all.end(), layout.optional.begin(), layout.optional.end());
  for (const auto& group : {params, buffers})
    for (const auto& item : group) {
      const std::string& key = item.key();
      if (key.rfind(prefix, 0) != 0) continue;
      const std::string name = key.substr(prefix.size());
      if (starts_with_any(name, all) && !file.find(name))
        throw Error("'" + path + "': is missing tensor '" + name + "'");
    }
  require(loaded > 0, "'" + path + "': no " + layout.arch + " tensors found");
}

}  // namespace leanseg
