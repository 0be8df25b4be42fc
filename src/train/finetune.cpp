// Fine-tuning after compression (C6) through the ordinary training loop (train_model), with
// pruning masks re-applied after every optimizer step.
#include <cmath>

#include "leanseg/finetune.h"
#include "leanseg/error.h"

namespace leanseg {
namespace {

template <class T>
void take(const nlohmann::json& j, const char* key, T& into) {
  if (!j.contains(key) || j[key].is_null()) return;
  try {
    into = j[key].get<T>();
  } catch (const std::exception&) {
    // A provenance field of an unexpected type: the default is a safe choice for fine-tuning.
  }
}

int round_up_to_32(int v) { return std::max(32, (v + 31) / 32 * 32); }

}  // namespace

TrainOptions finetune_options(const LoadedModel& m, int epochs) {
  TrainOptions o;
  o.model = m.model->config().arch;
  o.model_options = m.model->config().options;
  // Without provenance: the input pipeline the model file declares.
  o.input_mode = m.preprocessing.mode == "resize" ? "resize" : "crop";
  o.resize = m.preprocessing.resize;
  o.input_size = round_up_to_32(m.preprocessing.input_height);
  o.intensity = m.preprocessing.intensity;
  const auto t = m.extra.is_object() ? m.extra.value("train_options", nlohmann::json::object()) : nlohmann::json::object();
  if (t.is_object()) {
    take(t, "input_mode", o.input_mode);
    take(t, "resize", o.resize);
    take(t, "input_size", o.input_size);
    take(t, "crop_foreground_p", o.crop_foreground_p);
    take(t, "crops_per_image", o.crops_per_image);
    take(t, "intensity", o.intensity);
    take(t, "batch_size", o.batch_size);
    take(t, "weight_decay", o.weight_decay);
    take(t, "dice_weight", o.loss.dice_weight);
    take(t, "bce_weight", o.loss.bce_weight);
    take(t, "eps", o.loss.eps);
    take(t, "augment", o.augment);
    take(t, "val_fraction", o.val_fraction);
    take(t, "seed", o.seed);
    if (t.contains("betas") && t["betas"].is_array() && t["betas"].size() == 2)
      o.beta1 = t["betas"][0].get<double>(), o.beta2 = t["betas"][1].get<double>();
    if (t.contains("pos_weight")) {
      o.pos_weight_auto = t["pos_weight"] == "auto";
      if (t["pos_weight"].is_number()) o.loss.pos_weight = t["pos_weight"].get<double>();
    }
  }
  o.lr = 1e-4;
  o.epochs = epochs;
  o.early_stop_patience = epochs + 1;  // a short fine-tune runs all its epochs
  o.max_minutes = 0;
  return o;
}

FinetuneResult finetune(const LoadedModel& m, const Dataset& data, TrainOptions o, const std::vector<WeightMask>& masks) {
  require(data.channels == m.preprocessing.channels,
          "fine-tuning: the model expects channels " + nlohmann::json(m.preprocessing.channels).dump() +
              " but the data has " + nlohmann::json(data.channels).dump());
  SegmentationModel model = m.model;  // a handle: trained in place
  apply_masks(*model, masks);
  o.initial_model = model;
  o.model = m.model->config().arch;
  o.model_options = m.model->config().options;
  o.encoder_weights.clear();
  // Adam (with weight decay) moves pruned weights off zero; putting them back after every step
  // keeps the sparsity pattern fixed, so the network adapts around the removed weights.
  o.after_step = [masks](SegmentationModel& model) { apply_masks(*model, masks); };
  FinetuneResult r;
  r.run = train_model(data, o);
  r.model = load_model(o.out_dir + "/best.safetensors");
  apply_masks(*r.model.model, masks);
  r.model.extra = m.extra;
  return r;
}

}  // namespace leanseg
