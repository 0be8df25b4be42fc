// The model registry: name → (description, default options, factory). Options given by the
// user (or read from a model file) complete the defaults (unknown keys are errors), then every
// option is checked against its rule (type, range, divisibility) before any module is built;
// the completed config is what gets saved with the model.
#include <algorithm>
#include <functional>
#include <map>

#include "leanseg/error.h"
#include "leanseg/limits.h"
#include "encoder.h"
#include "zoo.h"

namespace leanseg {
namespace {

struct Entry {
  std::string name;
  std::string description;
  nlohmann::json defaults;
  std::function<SegmentationModel(const ModelConfig&)> make;
};

const std::vector<Entry>& entries() {
  static const std::vector<Entry> table = {
      {"mobilenet-aspp-se-unet",
       "M1: MobileNetV2 encoder (ImageNet, frozen) + ASPP + SE-residual decoder (seed architecture)",
       {{"encoder_frozen", true}, {"encoder_bn_frozen", false}, {"stem_init", "mean"}, {"separable", false},
        {"aspp_branch_channels", 128}, {"aspp_out_channels", 512}, {"aspp_rates", {6, 12, 18}},
        {"aspp_pool_groups", 32}, {"dropout", 0.5}, {"se_reduction", 16},
        {"decoder_channels", {256, 128, 64, 32, 32}}},
       make_mobilenet_aspp_se_unet},
      {"mobilenet-aspp-se-unet-lite",
       "M4: M1 with depthwise-separable ASPP/decoder and slimmer widths (seed's ~1.2M trainable budget)",
       {{"encoder_frozen", true}, {"encoder_bn_frozen", false}, {"stem_init", "mean"}, {"separable", true},
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
  static const std::vector<Entry> with_encoders = [] {
    std::vector<Entry> all = table;
    for (const auto& e : encoders()) {
      const std::string name = e.name;
      all.push_back({"unet-" + name, "U-Net decoder (smp style) over the " + e.description,
                     {{"encoder_frozen", false}, {"encoder_bn_frozen", false}, {"stem_init", "mean"},
                      {"decoder_channels", {256, 128, 64, 32, 16}}},
                     [name](const ModelConfig& c) { return make_encoder_unet(c, name); }});
    }
    return all;
  }();
  return with_encoders;
}

const Entry& find_entry(const std::string& name) {
  for (const auto& e : entries())
    if (name == e.name) return e;
  std::string known;
  for (const auto& e : entries()) known += std::string(known.empty() ? "" : ", ") + e.name;
  throw Error("unknown model '" + name + "' (known: " + known + ")");
}

// What a valid value of each option is. Every count and width is bounded, so that no module
// constructor divides by zero (se_reduction 0, aspp_pool_groups 0, attention_heads 0) or
// allocates an absurd layer before anything else looks at the config.
struct Rule {
  enum Kind { Bool, String, Int, Number, Ints } kind;
  int64_t lo = 0, hi = 0;                // Int, and each value of Ints
  size_t min_count = 0, max_count = 0;   // Ints
  std::vector<std::string> choices = {};  // String
};

const std::map<std::string, Rule>& rules() {
  const Rule channels{Rule::Int, 1, kMaxChannels};
  static const std::map<std::string, Rule> table = {
      {"encoder_frozen", {Rule::Bool}},
      {"encoder_bn_frozen", {Rule::Bool}},
      {"separable", {Rule::Bool}},
      {"stem_init", {Rule::String, 0, 0, 0, 0, {"mean", "sum"}}},
      {"aspp_branch_channels", channels},
      {"aspp_out_channels", channels},
      {"aspp_rates", {Rule::Ints, 1, kMaxImageSide, 1, 16}},
      {"aspp_pool_groups", channels},
      {"dropout", {Rule::Number}},  // [0, 1)
      {"se_reduction", channels},
      {"decoder_channels", {Rule::Ints, 1, kMaxChannels, 5, 5}},
      {"width", {Rule::Int, 1, kMaxChannels / 16}},  // the bottleneck has 16 × width channels
      {"channels", {Rule::Ints, 1, kMaxChannels, 6, 6}},
      {"reduction", channels},
      {"attention_heads", channels},
  };
  return table;
}

std::string range_text(int64_t lo, int64_t hi) { return "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]"; }

bool in_range(const nlohmann::json& v, const Rule& r) {
  const auto i = json_int64(v);
  return i && *i >= r.lo && *i <= r.hi;
}

// Throws naming the option when `v` breaks `r`; `def` is the default, shown for a wrong type.
void check_option(const std::string& who, const std::string& key, const nlohmann::json& v, const nlohmann::json& def,
                  const Rule& r) {
  const std::string what = who + ": option '" + key + "' ";
  const bool type_ok = r.kind == Rule::Bool     ? v.is_boolean()
                       : r.kind == Rule::String ? v.is_string()
                       : r.kind == Rule::Int    ? v.is_number_integer()
                       : r.kind == Rule::Number ? v.is_number()
                                                : v.is_array();
  require(type_ok, what + "should look like " + def.dump() + ", got " + v.dump());
  switch (r.kind) {
    case Rule::Bool: break;
    case Rule::String: {
      std::string choices;
      for (const auto& c : r.choices) choices += (choices.empty() ? "'" : ", '") + c + "'";
      require(std::find(r.choices.begin(), r.choices.end(), v.get<std::string>()) != r.choices.end(),
              what + "must be one of " + choices + ", got " + v.dump());
      break;
    }
    case Rule::Int: require(in_range(v, r), what + "must be an integer in " + range_text(r.lo, r.hi) + ", got " + v.dump()); break;
    case Rule::Number: {
      const double d = v.get<double>();
      require(d >= 0 && d < 1, what + "must be a number in [0, 1), got " + v.dump());
      break;
    }
    case Rule::Ints: {
      bool ok = v.size() >= r.min_count && v.size() <= r.max_count;
      for (const auto& e : v) ok = ok && in_range(e, r);
      const std::string count = r.min_count == r.max_count ? std::to_string(r.min_count)
                                                           : std::to_string(r.min_count) + " to " + std::to_string(r.max_count);
      require(ok, what + "must hold " + count + " integers in " + range_text(r.lo, r.hi) + ", got " + v.dump());
      break;
    }
  }
}

// Relations between options the modules divide by (GroupNorm groups, bottleneck reduction,
// attention heads); ranges are already checked.
void check_divides(const std::string& who, const nlohmann::json& o, const char* divisor, const char* key) {
  if (!o.contains(divisor) || !o.contains(key)) return;
  const int64_t d = o[divisor].get<int64_t>();
  const auto values = o[key].is_array() ? o[key].get<std::vector<int64_t>>() : std::vector<int64_t>{o[key].get<int64_t>()};
  for (int64_t v : values)
    require(v % d == 0, who + ": option '" + divisor + "' (" + std::to_string(d) + ") must divide '" + key + "' " +
                            o[key].dump());
}

// The one check of a completed config (every option present), before any module is built.
void validate_config(const ModelConfig& c, const Entry& e) {
  const std::string who = "model '" + c.arch + "'";
  require(c.in_channels >= 1 && c.in_channels <= 64,
          who + ": in_channels must be in [1, 64], got " + std::to_string(c.in_channels));
  require(c.num_classes >= 2 && c.num_classes <= kMaxClasses, who + ": num_classes must be in [2, " +
                                                                  std::to_string(kMaxClasses) + "], got " +
                                                                  std::to_string(c.num_classes));
  for (auto it = c.options.begin(); it != c.options.end(); ++it) {
    const auto rule = rules().find(it.key());
    require(rule != rules().end(), "internal: model option '" + it.key() + "' has no validation rule");
    check_option(who, it.key(), it.value(), e.defaults.at(it.key()), rule->second);
  }
  check_divides(who, c.options, "aspp_pool_groups", "aspp_branch_channels");
  check_divides(who, c.options, "reduction", "channels");
  if (c.options.contains("attention_heads")) {  // the bottleneck's channels are split into heads
    const int64_t heads = c.options["attention_heads"].get<int64_t>(), bottleneck = c.options["channels"][5].get<int64_t>();
    require(bottleneck % heads == 0, who + ": option 'attention_heads' (" + std::to_string(heads) +
                                         ") must divide the bottleneck's channels ('channels'[5] = " +
                                         std::to_string(bottleneck) + ")");
  }
}

// The defaults overridden by the given options; unknown options are refused.
ModelConfig complete(const ModelConfig& given, const Entry& e) {
  ModelConfig c = given;
  c.options = e.defaults;
  for (auto it = given.options.begin(); it != given.options.end(); ++it) {
    if (!e.defaults.contains(it.key())) {
      std::string allowed;
      for (auto d = e.defaults.begin(); d != e.defaults.end(); ++d) allowed += (allowed.empty() ? "" : ", ") + d.key();
      throw Error("model '" + given.arch + "': unknown option '" + it.key() + "' (options: " + allowed + ")");
    }
    c.options[it.key()] = it.value();
  }
  validate_config(c, e);
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
