#include "leanseg/model_file.h"

#include <filesystem>

#include "compress/weight_storage.h"
#include "leanseg/error.h"
#include "leanseg/limits.h"
#include "leanseg/safetensors.h"
#include "leanseg/tensor_io.h"

namespace leanseg {
namespace {

// Every floating-point parameter and buffer as loaded (after decoding compact storage).
void check_finite_state(const torch::nn::Module& m, const std::string& where) {
  for (const auto& [name, t] : state_dict(m)) {
    if (!t.is_floating_point()) continue;
    const torch::Tensor f = t.detach().to(torch::kFloat32).contiguous();
    check_finite(f.data_ptr<float>(), static_cast<size_t>(f.numel()), where + ": tensor '" + name + "'");
  }
}

}  // namespace

void save_model(const std::string& path, SegmentationModel model, const Preprocessing& pre,
                const nlohmann::json& extra, const WeightStorage& storage) {
  require(static_cast<int>(pre.channels.size()) == model->config().in_channels,
          "save_model: preprocessing lists " + std::to_string(pre.channels.size()) +
              " channels but the model takes " + std::to_string(model->config().in_channels));
  const EncodedState encoded = encode_state(*model, storage);
  // Plain files stay version 1 so that older leanseg builds keep reading them; compact storage
  // needs version 2 (an older build then says "upgrade" instead of failing on unknown tensors).
  const bool resized = !model->resized_tensors().empty();
  nlohmann::json meta = {{"format_version", encoded.storage.is_null() && !resized ? 1 : 2},
                         {"config", model->config().to_json()},
                         {"frozen_prefixes", model->frozen_prefixes()},
                         {"preprocessing", pre.to_json()},
                         {"extra", extra}};
  if (!encoded.storage.is_null()) meta["storage"] = encoded.storage;
  // A structurally pruned model: the shapes that differ from the architecture's.
  if (resized) meta["resized_tensors"] = model->resized_tensors();
  save_tensors(path, encoded.tensors, {{"format", "leanseg-model"}, {"leanseg", meta.dump()}});
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
  if (meta.contains("resized_tensors")) {
    try {
      out.model->resize_tensors(meta["resized_tensors"].get<std::map<std::string, std::vector<int64_t>>>());
    } catch (const Error& e) {
      throw Error(where + ": resized_tensors: " + e.what());
    } catch (const std::exception& e) {
      throw Error(where + ": resized_tensors must map tensor names to shapes (" + e.what() + ")");
    }
  }
  if (meta.contains("storage") && !meta["storage"].is_null()) {
    out.storage = meta["storage"];
    load_encoded_state(*out.model, file, out.storage);
  } else {
    load_state_strict(*out.model, file);
  }
  check_finite_state(*out.model, where);
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
