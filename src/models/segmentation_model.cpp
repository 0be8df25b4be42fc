#include "leanseg/error.h"
#include "leanseg/limits.h"
#include "leanseg/model.h"

namespace leanseg {

nlohmann::json ModelConfig::to_json() const {
  nlohmann::json j = {{"arch", arch}, {"in_channels", in_channels}, {"options", options}};
  if (num_classes != 2) j["num_classes"] = num_classes;
  // Absent means off: model files keep loading in builds from before the option (they refuse
  // unknown options), as binary models keep them by leaving out num_classes.
  if (!options.value("encoder_bn_frozen", true)) j["options"].erase("encoder_bn_frozen");
  return j;
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  require(j.is_object() && j.contains("arch") && j["arch"].is_string(), "model config: missing string 'arch'");
  ModelConfig c;
  c.arch = j["arch"].get<std::string>();
  if (j.contains("in_channels")) {
    require(j["in_channels"].is_number_integer(), "model config: 'in_channels' must be an integer");
    // get<int>() would wrap 2^32 + 1 to 1; the registry checks the range of what fits.
    const auto v = json_int64(j["in_channels"]);
    require(v && *v >= std::numeric_limits<int>::min() && *v <= std::numeric_limits<int>::max(),
            "model config: 'in_channels' " + j["in_channels"].dump() + " does not fit in an int");
    c.in_channels = static_cast<int>(*v);
  }
  if (j.contains("num_classes")) {
    const auto v = json_int64(j["num_classes"]);
    require(v && *v >= 2 && *v <= kMaxClasses, "model config: 'num_classes' must be an integer in [2, " +
                                                   std::to_string(kMaxClasses) + "], got " + j["num_classes"].dump());
    c.num_classes = static_cast<int>(*v);
  }
  if (j.contains("options")) {
    require(j["options"].is_object(), "model config: 'options' must be an object");
    c.options = j["options"];
  }
  return c;
}

void SegmentationModelImpl::check_input(const torch::Tensor& x) const {
  const std::string who = config_.arch + ": input ";
  if (x.dim() != 4) throw Error(who + "must be [N, C, H, W], got " + std::to_string(x.dim()) + " dimensions");
  if (x.size(1) != config_.in_channels)
    throw Error(who + "has " + std::to_string(x.size(1)) + " channels, the model was built for " +
                std::to_string(config_.in_channels));
  const int64_t d = size_divisor();
  if (x.size(2) % d != 0 || x.size(3) % d != 0 || x.size(2) == 0 || x.size(3) == 0) {
    auto up = [d](int64_t v) { return std::to_string(std::max<int64_t>(d, (v + d - 1) / d * d)); };
    throw Error(who + "size " + std::to_string(x.size(2)) + "x" + std::to_string(x.size(3)) +
                " (HxW) is not a positive multiple of " + std::to_string(d) + "; pad or resize it (e.g. to " +
                up(x.size(2)) + "x" + up(x.size(3)) + ")");
  }
}

torch::Tensor SegmentationModelImpl::forward(const torch::Tensor& x) {
  check_input(x);
  return run(x, nullptr);
}

torch::Tensor SegmentationModelImpl::forward_recorded(const torch::Tensor& x, std::vector<StageRecord>& records) {
  check_input(x);
  records.clear();
  return run(x, &records);
}

namespace {
bool has_prefix(const std::string& name, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes)
    if (name.rfind(p, 0) == 0) return true;
  return false;
}
}  // namespace

void SegmentationModelImpl::set_frozen_prefixes(std::vector<std::string> prefixes) {
  frozen_prefixes_ = std::move(prefixes);
  for (auto& p : named_parameters(true)) p.value().set_requires_grad(!has_prefix(p.key(), frozen_prefixes_));
  train(is_training());
}

void SegmentationModelImpl::set_statistics_frozen_prefixes(std::vector<std::string> prefixes) {
  statistics_frozen_prefixes_ = std::move(prefixes);
  train(is_training());
}

void SegmentationModelImpl::train(bool on) {
  torch::nn::Module::train(on);
  if (!on || (frozen_prefixes_.empty() && statistics_frozen_prefixes_.empty())) return;
  // Frozen BatchNorm layers keep their running statistics: eval mode (Dropout too, which the
  // pretrained encoders do not have).
  for (const auto& m : named_modules("", /*include_self=*/false)) {
    const std::string name = m.key() + ".";
    if (has_prefix(name, frozen_prefixes_) || has_prefix(name, statistics_frozen_prefixes_)) m.value()->eval();
  }
}

ParamCounts count_params(const torch::nn::Module& m) {
  ParamCounts c;
  for (const auto& p : m.parameters(true)) {
    const int64_t n = p.numel();
    c.total += n;
    (p.requires_grad() ? c.trainable : c.frozen) += n;
    c.nonzero += p.count_nonzero().item<int64_t>();
  }
  return c;
}

}  // namespace leanseg
