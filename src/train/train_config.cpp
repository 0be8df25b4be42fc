// Run configuration files: `leanseg train --config run.yaml|run.json`, and the fully resolved
// RUN/config.json every run writes. One JSON schema for both formats (YAML is read into JSON);
// each key has one setter that checks the value's type and range, so a wrong file fails naming
// the file and the key instead of surfacing later as an option error it never mentioned.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <yaml-cpp/yaml.h>

#include "leanseg/error.h"
#include "leanseg/train.h"

namespace leanseg {
namespace fs = std::filesystem;
namespace {

using json = nlohmann::json;

// ---- reading: YAML → JSON -------------------------------------------------------------------

// A plain (unquoted) YAML scalar as YAML 1.2's core schema types it; quoted scalars stay strings.
json yaml_scalar(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  const bool integer = s.find_first_not_of("+-0123456789") == std::string::npos && s.find_first_of("0123456789") != std::string::npos;
  try {
    size_t used = 0;
    if (integer) {
      const long long v = std::stoll(s, &used);
      if (used == s.size()) return v;
    }
    const double d = std::stod(s, &used);
    if (used == s.size() && std::isfinite(d) && s.find_first_of("0123456789") != std::string::npos) return d;
  } catch (const std::exception&) {
  }
  return s;
}

json yaml_to_json(const YAML::Node& n, const std::string& path) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: return yaml_scalar(n);
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& e : n) a.push_back(yaml_to_json(e, path));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) {
        require(kv.first.IsScalar(), "config file '" + path + "': line " + std::to_string(kv.first.Mark().line + 1) +
                                         ": keys must be plain names");
        const std::string key = kv.first.Scalar();
        require(!o.contains(key), "config file '" + path + "': line " + std::to_string(kv.first.Mark().line + 1) +
                                      ": key '" + key + "' appears twice");
        o[key] = yaml_to_json(kv.second, path);
      }
      return o;
    }
  }
  return nullptr;
}

// ---- applying: one setter per key -----------------------------------------------------------

// The file and key a value came from, for messages: "config file 'run.yaml': key 'qat.bits': ...".
struct Where {
  const std::string& file;
  std::string key;
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("config file '" + file + "': key '" + key + "': " + what);
  }
  void check(bool ok, const std::string& what) const {
    if (!ok) fail(what);
  }
};

std::string got(const json& v) { return ", got " + v.dump(); }

bool boolean(const json& v, const Where& w) {
  w.check(v.is_boolean(), "expected true or false" + got(v));
  return v.get<bool>();
}

std::string text(const json& v, const Where& w) {
  w.check(v.is_string(), "expected a string" + got(v));
  return v.get<std::string>();
}

std::string choice(const json& v, const Where& w, const std::vector<std::string>& choices) {
  const std::string s = text(v, w);
  std::string list;
  for (const auto& c : choices) {
    if (s == c) return s;
    list += (list.empty() ? "" : ", ") + c;
  }
  w.fail("expected one of " + list + got(v));
}

std::string short_text(double d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", d);
  return buf;
}

// A number in [lo, hi] (open at lo when lo_open, at hi when hi_open).
double number(const json& v, const Where& w, double lo, double hi, bool lo_open = false, bool hi_open = false) {
  w.check(v.is_number(), "expected a number" + got(v));
  const double d = v.get<double>();
  const bool ok = std::isfinite(d) && (lo_open ? d > lo : d >= lo) && (hi_open ? d < hi : d <= hi);
  w.check(ok, "expected a number in " + std::string(lo_open ? "(" : "[") + short_text(lo) + ", " + short_text(hi) +
                  (hi_open ? ")" : "]") + got(v));
  return d;
}

int integer(const json& v, const Where& w, int lo, int hi) {
  w.check(v.is_number_integer(), "expected an integer" + got(v));
  const int64_t i = v.get<int64_t>();
  w.check(i >= lo && i <= hi, "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]" + got(v));
  return static_cast<int>(i);
}

// A path as written, relative ones taken from the config file's folder.
std::string path_from(const json& v, const Where& w) {
  const std::string p = text(v, w);
  if (p.empty() || fs::path(p).is_absolute()) return p;
  return (fs::path(w.file).parent_path() / p).lexically_normal().string();
}

using Setter = std::function<void(const json&, const Where&, TrainOptions&)>;

// The keys of an object section ("qat", "augmentation", ...): each one a setter.
void apply_section(const json& v, const Where& w, TrainOptions& o, const std::map<std::string, Setter>& keys) {
  w.check(v.is_object(), "expected a section of keys (" + [&] {
    std::string k;
    for (const auto& e : keys) k += (k.empty() ? "" : ", ") + e.first;
    return k;
  }() + ")" + got(v));
  for (const auto& item : v.items()) {
    const Where inner{w.file, w.key + "." + item.key()};
    const auto it = keys.find(item.key());
    if (it == keys.end()) {
      std::string known;
      for (const auto& e : keys) known += (known.empty() ? "" : ", ") + e.first;
      inner.fail("unknown key (known in '" + w.key + "': " + known + ")");
    }
    it->second(item.value(), inner, o);
  }
}

constexpr double kBig = 1e9;

const std::map<std::string, Setter>& top_level_keys() {
  static const std::map<std::string, Setter> keys = {
      {"preset", [](const json& v, const Where& w, TrainOptions&) { text(v, w); }},  // read by the caller
      {"data",
       [](const json& v, const Where& w, TrainOptions& o) {
         json source = json::object();
         apply_section(v, w, o,
                       {{"dir", [&](const json& x, const Where& ww, TrainOptions&) { source["dir"] = path_from(x, ww); }},
                        {"dataset", [&](const json& x, const Where& ww, TrainOptions&) { source["dataset"] = text(x, ww); }},
                        {"channels", [&](const json& x, const Where& ww, TrainOptions&) {
                           ww.check(x.is_array(), "expected a list of channel names" + got(x));
                           for (const auto& c : x) ww.check(c.is_string(), "expected a list of channel names" + got(x));
                           source["channels"] = x;
                         }}});
         o.data_source = source;
       }},
      {"model", [](const json& v, const Where& w, TrainOptions& o) { o.model = text(v, w); }},
      {"model_options",
       [](const json& v, const Where& w, TrainOptions& o) {
         w.check(v.is_object(), "expected a section of model options" + got(v));
         o.model_options = v;
       }},
      {"encoder_weights", [](const json& v, const Where& w, TrainOptions& o) { o.encoder_weights = path_from(v, w); }},
      {"init_from", [](const json& v, const Where& w, TrainOptions& o) { o.init_from = path_from(v, w); }},
      {"input_mode", [](const json& v, const Where& w, TrainOptions& o) { o.input_mode = choice(v, w, {"resize", "crop"}); }},
      {"resize", [](const json& v, const Where& w, TrainOptions& o) { o.resize = choice(v, w, {"stretch", "letterbox"}); }},
      {"input_size",
       [](const json& v, const Where& w, TrainOptions& o) {
         o.input_size = integer(v, w, 32, 8192);
         w.check(o.input_size % 32 == 0, "expected a multiple of 32" + got(v));
       }},
      {"crop_foreground_p", [](const json& v, const Where& w, TrainOptions& o) { o.crop_foreground_p = number(v, w, 0, 1); }},
      {"crops_per_image", [](const json& v, const Where& w, TrainOptions& o) { o.crops_per_image = integer(v, w, 1, 1000); }},
      {"intensity", [](const json& v, const Where& w, TrainOptions& o) { o.intensity = choice(v, w, {"max", "minmax"}); }},
      {"batch_size", [](const json& v, const Where& w, TrainOptions& o) { o.batch_size = integer(v, w, 1, 1 << 16); }},
      {"epochs", [](const json& v, const Where& w, TrainOptions& o) { o.epochs = integer(v, w, 1, 1 << 20); }},
      {"lr", [](const json& v, const Where& w, TrainOptions& o) { o.lr = number(v, w, 0, 1, true); }},
      {"weight_decay", [](const json& v, const Where& w, TrainOptions& o) { o.weight_decay = number(v, w, 0, 1); }},
      {"betas",
       [](const json& v, const Where& w, TrainOptions& o) {
         w.check(v.is_array() && v.size() == 2, "expected two numbers [beta1, beta2]" + got(v));
         o.beta1 = number(v[0], w, 0, 1, false, true), o.beta2 = number(v[1], w, 0, 1, false, true);
       }},
      {"plateau_patience", [](const json& v, const Where& w, TrainOptions& o) { o.plateau_patience = integer(v, w, 0, 1 << 20); }},
      {"plateau_factor",
       [](const json& v, const Where& w, TrainOptions& o) {
         o.plateau_factor = number(v, w, 0, 1, true, true);  // it lowers the rate
       }},
      {"min_lr", [](const json& v, const Where& w, TrainOptions& o) { o.min_lr = number(v, w, 0, 1); }},
      {"early_stop_patience", [](const json& v, const Where& w, TrainOptions& o) { o.early_stop_patience = integer(v, w, 1, 1 << 20); }},
      {"dice_weight", [](const json& v, const Where& w, TrainOptions& o) { o.loss.dice_weight = number(v, w, 0, kBig); }},
      {"bce_weight", [](const json& v, const Where& w, TrainOptions& o) { o.loss.bce_weight = number(v, w, 0, kBig); }},
      {"eps", [](const json& v, const Where& w, TrainOptions& o) { o.loss.eps = number(v, w, 0, 1, true); }},
      {"pos_weight",
       [](const json& v, const Where& w, TrainOptions& o) {
         o.pos_weight_auto = v.is_string();
         if (v.is_string()) return void(w.check(v == "auto", "expected a positive number or \"auto\"" + got(v)));
         w.check(v.is_number(), "expected a positive number or \"auto\"" + got(v));
         o.loss.pos_weight = number(v, w, 0, kBig, true);
       }},
      {"augment", [](const json& v, const Where& w, TrainOptions& o) { o.augment = boolean(v, w); }},
      {"augmentation",
       [](const json& v, const Where& w, TrainOptions& o) {
         auto p = [](double AugmentOptions::*f) {
           return [f](const json& x, const Where& ww, TrainOptions& oo) { oo.augment_options.*f = number(x, ww, 0, 1); };
         };
         apply_section(v, w, o,
                       {{"flip_p", p(&AugmentOptions::flip_p)},
                        {"rotate_p", p(&AugmentOptions::rotate_p)},
                        {"scale_p", p(&AugmentOptions::scale_p)},
                        {"translate_p", p(&AugmentOptions::translate_p)},
                        {"scale", p(&AugmentOptions::scale)},
                        {"translate", p(&AugmentOptions::translate)},
                        {"rotate_deg", [](const json& x, const Where& ww, TrainOptions& oo) {
                           oo.augment_options.rotate_deg = number(x, ww, 0, 180);
                         }},
                        {"rot90", [](const json& x, const Where& ww, TrainOptions& oo) {
                           oo.augment_options.rot90 = boolean(x, ww);
                         }}});
       }},
      {"val_fraction",
       [](const json& v, const Where& w, TrainOptions& o) {
         o.val_fraction = number(v, w, 0, 1, true, true);
       }},
      {"seed",
       [](const json& v, const Where& w, TrainOptions& o) {
         w.check(v.is_number_integer() && (v.is_number_unsigned() || v.get<int64_t>() >= 0), "expected a non-negative integer" + got(v));
         o.seed = v.get<uint64_t>();
       }},
      {"max_minutes", [](const json& v, const Where& w, TrainOptions& o) { o.max_minutes = number(v, w, 0, kBig); }},
      {"channels_last", [](const json& v, const Where& w, TrainOptions& o) { o.channels_last = boolean(v, w); }},
      {"bf16", [](const json& v, const Where& w, TrainOptions& o) { o.bf16 = boolean(v, w); }},
      {"qat",
       [](const json& v, const Where& w, TrainOptions& o) {
         apply_section(v, w, o,
                       {{"bits", [](const json& x, const Where& ww, TrainOptions& oo) {
                           oo.qat_bits = integer(x, ww, 0, 8);
                           ww.check(oo.qat_bits == 0 || oo.qat_bits == 2 || oo.qat_bits == 4 || oo.qat_bits == 8,
                                    "expected 0 (off), 2, 4 or 8" + got(x));
                         }},
                        {"per_channel", [](const json& x, const Where& ww, TrainOptions& oo) { oo.qat_per_channel = boolean(x, ww); }}});
       }},
      {"distillation",
       [](const json& v, const Where& w, TrainOptions& o) {
         apply_section(v, w, o,
                       {{"teacher", [](const json& x, const Where& ww, TrainOptions& oo) { oo.teacher = path_from(x, ww); }},
                        {"alpha", [](const json& x, const Where& ww, TrainOptions& oo) { oo.distill_alpha = number(x, ww, 0, 1); }},
                        {"temperature", [](const json& x, const Where& ww, TrainOptions& oo) {
                           oo.distill_temperature = number(x, ww, 0, kBig, true);
                         }}});
       }},
      {"progressive",
       [](const json& v, const Where& w, TrainOptions& o) {
         apply_section(v, w, o,
                       {{"start", [](const json& x, const Where& ww, TrainOptions& oo) { oo.progressive_start = integer(x, ww, 0, 8192); }},
                        {"epochs", [](const json& x, const Where& ww, TrainOptions& oo) { oo.progressive_epochs = integer(x, ww, 0, 1 << 20); }}});
       }},
      {"gradual_pruning",
       [](const json& v, const Where& w, TrainOptions& o) {
         apply_section(v, w, o,
                       {{"target", [](const json& x, const Where& ww, TrainOptions& oo) { oo.prune_target = number(x, ww, 0, 1); }},
                        {"epochs", [](const json& x, const Where& ww, TrainOptions& oo) { oo.prune_epochs = integer(x, ww, 0, 1 << 20); }}});
       }},
  };
  return keys;
}

}  // namespace

nlohmann::json read_config_file(const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  require(ext == ".json" || ext == ".yaml" || ext == ".yml",
          "config file '" + path + "': unknown format '" + ext + "' (use .json, .yaml or .yml)");
  std::ifstream in(path);
  require(static_cast<bool>(in) && !fs::is_directory(path), "config file '" + path + "': cannot open");
  json j;
  if (ext == ".json") {
    try {
      j = json::parse(in);
    } catch (const json::exception& e) {
      throw Error("config file '" + path + "': not valid JSON (" + e.what() + ")");
    }
  } else {
    try {
      j = yaml_to_json(YAML::Load(in), path);
    } catch (const YAML::Exception& e) {
      throw Error("config file '" + path + "': not valid YAML: line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
    }
  }
  require(j.is_object(), "config file '" + path + "': expected keys and values at the top level, got " +
                             std::string(j.type_name()));
  return j;
}

nlohmann::json train_config_json(const TrainOptions& o) {
  const AugmentOptions& a = o.augment_options;
  json j = {{"model", o.model},
            {"model_options", o.model_options},
            {"encoder_weights", o.encoder_weights},
            {"input_mode", o.input_mode},
            {"resize", o.resize},
            {"input_size", o.input_size},
            {"crop_foreground_p", o.crop_foreground_p},
            {"crops_per_image", o.crops_per_image},
            {"intensity", o.intensity},
            {"batch_size", o.batch_size},
            {"epochs", o.epochs},
            {"lr", o.lr},
            {"weight_decay", o.weight_decay},
            {"betas", {o.beta1, o.beta2}},
            {"plateau_patience", o.plateau_patience},
            {"plateau_factor", o.plateau_factor},
            {"min_lr", o.min_lr},
            {"early_stop_patience", o.early_stop_patience},
            {"dice_weight", o.loss.dice_weight},
            {"bce_weight", o.loss.bce_weight},
            {"eps", o.loss.eps},
            {"pos_weight", o.pos_weight_auto ? json("auto") : json(o.loss.pos_weight)},
            {"augment", o.augment},
            {"augmentation",
             {{"flip_p", a.flip_p}, {"rotate_deg", a.rotate_deg}, {"rotate_p", a.rotate_p}, {"scale", a.scale},
              {"scale_p", a.scale_p}, {"translate", a.translate}, {"translate_p", a.translate_p}, {"rot90", a.rot90}}},
            {"val_fraction", o.val_fraction},
            {"seed", o.seed},
            {"max_minutes", o.max_minutes},
            {"channels_last", o.channels_last},
            {"bf16", o.bf16},
            {"qat", {{"bits", o.qat_bits}, {"per_channel", o.qat_per_channel}}},
            {"distillation", {{"teacher", o.teacher}, {"alpha", o.distill_alpha}, {"temperature", o.distill_temperature}}},
            {"progressive", {{"start", o.progressive_start}, {"epochs", o.progressive_epochs}}},
            {"gradual_pruning", {{"target", o.prune_target}, {"epochs", o.prune_epochs}}}};
  if (!o.init_from.empty()) j["init_from"] = o.init_from;
  if (!o.data_source.is_null()) j["data"] = o.data_source;
  return j;
}

void apply_train_config(const nlohmann::json& config, TrainOptions& o, const std::string& file) {
  require(config.is_object(), "config file '" + file + "': expected keys and values at the top level");
  const auto& keys = top_level_keys();
  for (const auto& item : config.items()) {
    const Where w{file, item.key()};
    const auto it = keys.find(item.key());
    if (it == keys.end()) {
      std::string known;
      for (const auto& e : keys) known += (known.empty() ? "" : ", ") + e.first;
      w.fail("unknown key (known: " + known + ")");
    }
    it->second(item.value(), w, o);
  }
  // A model of another family does not take the preset's model options (as --model on the CLI).
  if (config.contains("model") && !config.contains("model_options") && o.model.rfind("mobilenet", 0) != 0)
    o.model_options = json::object();
}

}  // namespace leanseg
