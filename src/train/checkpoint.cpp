#include "checkpoint.h"

#include "leanseg/error.h"
#include "leanseg/safetensors.h"
#include "leanseg/tensor_io.h"

namespace leanseg {
namespace {

std::string state_key(const torch::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

// The checkpoint's own metadata entry (model config, Adam steps, trainer state).
nlohmann::json checkpoint_meta(const SafeTensorsFile& file, const std::string& path) {
  auto it = file.metadata().find("leanseg_checkpoint");
  require(it != file.metadata().end(), "'" + path + "': not a leanseg training checkpoint");
  return nlohmann::json::parse(it->second);
}

}  // namespace

void save_checkpoint(const std::string& path, SegmentationModel model, torch::optim::Adam& opt,
                     const nlohmann::json& trainer_state) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& [name, t] : state_dict(*model)) tensors.emplace_back("model." + name, t);
  nlohmann::json steps = nlohmann::json::array();
  const auto& params = opt.param_groups().at(0).params();
  for (size_t i = 0; i < params.size(); ++i) {
    auto it = opt.state().find(state_key(params[i]));
    if (it == opt.state().end()) {
      steps.push_back(0);
      continue;
    }
    auto& st = static_cast<torch::optim::AdamParamState&>(*it->second);
    steps.push_back(st.step());
    tensors.emplace_back("optim." + std::to_string(i) + ".exp_avg", st.exp_avg());
    tensors.emplace_back("optim." + std::to_string(i) + ".exp_avg_sq", st.exp_avg_sq());
  }
  nlohmann::json meta = {{"trainer", trainer_state}, {"adam_steps", steps}, {"config", model->config().to_json()}};
  save_tensors(path, tensors, {{"format", "leanseg-checkpoint"}, {"leanseg_checkpoint", meta.dump()}});
}

nlohmann::json checkpoint_trainer_state(const std::string& path) {
  return checkpoint_meta(SafeTensorsFile::open_lazy(path), path).at("trainer");
}

nlohmann::json load_checkpoint(const std::string& path, SegmentationModel model, torch::optim::Adam& opt) {
  const auto file = SafeTensorsFile::open(path);
  const std::string where = "'" + path + "'";
  const auto meta = checkpoint_meta(file, path);
  require(meta.at("config") == model->config().to_json(),
          where + ": checkpoint was made for a different model config: " + meta.at("config").dump());
  for (auto& [name, dst] : state_dict(*model))
    copy_checked(dst, tensor_from_safetensors(file, file.at("model." + name)), where + ": tensor 'model." + name + "'");
  const auto& params = opt.param_groups().at(0).params();
  const auto& steps = meta.at("adam_steps");
  require(steps.size() == params.size(), where + ": optimizer has " + std::to_string(steps.size()) +
                                             " parameters, the model " + std::to_string(params.size()));
  for (size_t i = 0; i < params.size(); ++i) {
    if (steps[i].get<int64_t>() == 0) continue;
    auto st = std::make_unique<torch::optim::AdamParamState>();
    st->step(steps[i].get<int64_t>());
    st->exp_avg(tensor_from_safetensors(file, file.at("optim." + std::to_string(i) + ".exp_avg")));
    st->exp_avg_sq(tensor_from_safetensors(file, file.at("optim." + std::to_string(i) + ".exp_avg_sq")));
    opt.state()[state_key(params[i])] = std::move(st);
  }
  return meta.at("trainer");
}

}  // namespace leanseg
