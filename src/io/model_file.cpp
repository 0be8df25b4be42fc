#include "leanseg/model_file.h"

#include <filesystem>

#include "leanseg/error.h"
#include "leanseg/safetensors.h"
#include "leanseg/tensor_io.h"

namespace leanseg {
namespace {

template <class T>
T field(const nlohmann::json& j, const char* key, const T& fallback, const std::string& where) {
  if (!j.contains(key)) return fallback;
  try {
    return j.at(key).get<T>();
  } catch (const std::exception&) {
    throw Error(where + ": preprocessing field '" + key + "' has the wrong type: " + j.at(key).dump());
  }
}

}  // namespace

nlohmann::json Preprocessing::to_json() const {
  return {{"channels", channels}, {"intensity", intensity}, {"max_value", max_value}, {"mean", mean},
          {"std", std}, {"input_height", input_height}, {"input_width", input_width}, {"mode", mode},
          {"threshold", threshold}};
}

Preprocessing Preprocessing::from_json(const nlohmann::json& j, const std::string& where) {
  require(j.is_object(), where + ": preprocessing is not a JSON object");
  Preprocessing p;
  p.channels = field(j, "channels", p.channels, where);
  p.intensity = field(j, "intensity", p.intensity, where);
  p.max_value = field(j, "max_value", p.max_value, where);
  p.mean = field(j, "mean", p.mean, where);
  p.std = field(j, "std", p.std, where);
  p.input_height = field(j, "input_height", p.input_height, where);
  p.input_width = field(j, "input_width", p.input_width, where);
  p.mode = field(j, "mode", p.mode, where);
  p.threshold = field(j, "threshold", p.threshold, where);
  require(!p.channels.empty(), where + ": preprocessing lists no input channels");
  for (const auto& c : p.channels)
    require(c == "gray" || c == "w1" || c == "w2" || c == "r" || c == "g" || c == "b",
            where + ": unknown input channel source '" + c + "' (gray, w1, w2, r, g, b)");
  require(p.intensity == "max" || p.intensity == "minmax", where + ": intensity must be 'max' or 'minmax'");
  require(p.max_value > 0, where + ": max_value must be > 0");
  require(p.std > 0, where + ": std must be > 0");
  require(p.input_height > 0 && p.input_width > 0, where + ": input size must be positive");
  require(p.mode == "resize" || p.mode == "pad" || p.mode == "tile", where + ": mode must be resize, pad or tile");
  require(p.threshold > 0 && p.threshold < 1, where + ": threshold must be in (0, 1)");
  return p;
}

void save_model(const std::string& path, SegmentationModel model, const Preprocessing& pre,
                const nlohmann::json& extra) {
  require(static_cast<int>(pre.channels.size()) == model->config().in_channels,
          "save_model: preprocessing lists " + std::to_string(pre.channels.size()) +
              " channels but the model takes " + std::to_string(model->config().in_channels));
  nlohmann::json meta = {{"format_version", kModelFormatVersion},
                         {"config", model->config().to_json()},
                         {"frozen_prefixes", model->frozen_prefixes()},
                         {"preprocessing", pre.to_json()},
                         {"extra", extra}};
  save_tensors(path, state_dict(*model), {{"format", "leanseg-model"}, {"leanseg", meta.dump()}});
}

LoadedModel load_model(const std::string& path) {
  const SafeTensorsFile file = SafeTensorsFile::open(path);
  const std::string where = "'" + path + "'";
  auto it = file.metadata().find("leanseg");
  if (it == file.metadata().end())
    throw Error(where + ": safetensors file without leanseg metadata (not a leanseg model file; "
                        "encoder weights go to --encoder-weights)");
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(it->second);
  } catch (const std::exception& e) {
    throw Error(where + ": leanseg metadata is not valid JSON (" + e.what() + ")");
  }
  require(meta.is_object() && meta.contains("format_version") && meta["format_version"].is_number_integer(),
          where + ": leanseg metadata has no integer format_version");
  const int version = meta["format_version"].get<int>();
  require(version <= kModelFormatVersion, where + ": model format version " + std::to_string(version) +
                                              " is newer than this leanseg understands (" +
                                              std::to_string(kModelFormatVersion) + "); upgrade leanseg");
  require(meta.contains("config"), where + ": leanseg metadata has no 'config'");
  LoadedModel out;
  try {
    out.model = create_model(ModelConfig::from_json(meta["config"]));
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  out.preprocessing = Preprocessing::from_json(meta.value("preprocessing", nlohmann::json::object()), where);
  require(static_cast<int>(out.preprocessing.channels.size()) == out.model->config().in_channels,
          where + ": preprocessing lists " + std::to_string(out.preprocessing.channels.size()) +
              " channels but the model takes " + std::to_string(out.model->config().in_channels));
  if (meta.contains("frozen_prefixes")) out.model->set_frozen_prefixes(meta["frozen_prefixes"].get<std::vector<std::string>>());
  out.extra = meta.value("extra", nlohmann::json::object());
  load_state_strict(*out.model, file);
  out.model->eval();
  return out;
}

LoadedModel open_model(const std::string& name_or_path, int in_channels) {
  if (is_model_name(name_or_path) && !std::filesystem::exists(name_or_path)) {
    LoadedModel m;
    m.model = create_model(name_or_path, in_channels);
    m.preprocessing.channels.assign(in_channels, "gray");
    m.model->eval();
    return m;
  }
  if (!std::filesystem::exists(name_or_path)) {
    std::string names;
    for (const auto& n : model_names()) names += (names.empty() ? "" : ", ") + n;
    throw Error("'" + name_or_path + "' is neither a model file nor a model name (" + names + ")");
  }
  return load_model(name_or_path);
}

}  // namespace leanseg
