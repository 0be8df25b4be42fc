// The model registry: name → (description, default options, factory). Options given by the
// user are checked against the defaults (unknown keys and wrong types are errors), then the
// completed config is what gets saved with the model.
#include <functional>

#include "leanseg/error.h"
#include "zoo.h"

namespace leanseg {
namespace {

struct Entry {
  const char* name;
  const char* description;
  nlohmann::json defaults;
  std::function<SegmentationModel(const ModelConfig&)> make;
};

const std::vector<Entry>& entries() {
  static const std::vector<Entry> table = {
      {"mobilenet-aspp-se-unet",
       "M1: MobileNetV2 encoder (ImageNet, frozen) + ASPP + SE-residual decoder (seed architecture)",
       {{"encoder_frozen", true}, {"stem_init", "mean"}, {"separable", false},
        {"aspp_branch_channels", 128}, {"aspp_out_channels", 512}, {"aspp_rates", {6, 12, 18}},
        {"aspp_pool_groups", 32}, {"dropout", 0.5}, {"se_reduction", 16},
        {"decoder_channels", {256, 128, 64, 32, 32}}},
       make_mobilenet_aspp_se_unet},
      {"mobilenet-aspp-se-unet-lite",
       "M4: M1 with depthwise-separable ASPP/decoder and slimmer widths (seed's ~1.2M trainable budget)",
       {{"encoder_frozen", true}, {"stem_init", "mean"}, {"separable", true},
        {"aspp_branch_channels", 64}, {"aspp_out_channels", 256}, {"aspp_rates", {6, 12, 18}},
        {"aspp_pool_groups", 16}, {"dropout", 0.5}, {"se_reduction", 16},
        {"decoder_channels", {256, 128, 64, 32, 32}}},
       make_mobilenet_aspp_se_unet},
      {"unet", "M2: Ronneberger U-Net, width 64 (~31M params)", {{"width", 64}}, make_unet},
      {"unet-32", "M2: Ronneberger U-Net, width 32 (~7.8M params)", {{"width", 32}}, make_unet},
      {"efficient-unet",
       "M3: depthwise-separable U-Net with bottleneck blocks and linear attention (<=5M params)",
       {{"channels", {32, 64, 128, 256, 384, 512}}, {"reduction", 4}, {"attention_heads", 4}},
       make_efficient_unet},
  };
  return table;
}

const Entry& find_entry(const std::string& name) {
  for (const auto& e : entries())
    if (name == e.name) return e;
  std::string known;
  for (const auto& e : entries()) known += std::string(known.empty() ? "" : ", ") + e.name;
  throw Error("unknown model '" + name + "' (known: " + known + ")");
}

bool same_kind(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_number() && b.is_number()) return !(a.is_number_float() == false && b.is_number_float());
  return a.type() == b.type();
}

ModelConfig complete(const ModelConfig& given, const Entry& e) {
  require(given.in_channels >= 1 && given.in_channels <= 64,
          "model '" + given.arch + "': in_channels must be in [1, 64], got " + std::to_string(given.in_channels));
  ModelConfig c = given;
  c.options = e.defaults;
  for (auto it = given.options.begin(); it != given.options.end(); ++it) {
    if (!e.defaults.contains(it.key())) {
      std::string allowed;
      for (auto d = e.defaults.begin(); d != e.defaults.end(); ++d) allowed += (allowed.empty() ? "" : ", ") + d.key();
      throw Error("model '" + given.arch + "': unknown option '" + it.key() + "' (options: " + allowed + ")");
    }
    if (!same_kind(e.defaults[it.key()], it.value()))
      throw Error("model '" + given.arch + "': option '" + it.key() + "' should look like " +
                  e.defaults[it.key()].dump() + ", got " + it.value().dump());
    c.options[it.key()] = it.value();
  }
  return c;
}

}  // namespace

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& e : entries()) names.push_back(e.name);
  return names;
}

bool is_model_name(const std::string& name) {
  for (const auto& e : entries())
    if (name == e.name) return true;
  return false;
}

std::string model_description(const std::string& name) { return find_entry(name).description; }

SegmentationModel create_model(const ModelConfig& config) {
  const Entry& e = find_entry(config.arch);
  return e.make(complete(config, e));
}

SegmentationModel create_model(const std::string& arch, int in_channels) {
  ModelConfig c;
  c.arch = arch;
  c.in_channels = in_channels;
  return create_model(c);
}

}  // namespace leanseg
