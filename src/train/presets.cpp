// Named training recipes. "hc18"/"bbbc010" are the seeds' recipes; the "-cpu" variants are the
// CPU protocols used for README results (about an hour on 2 cores); "demo" runs in minutes.
#include "leanseg/error.h"
#include "leanseg/train.h"

namespace leanseg {

nlohmann::json TrainOptions::to_json() const {
  nlohmann::json j = {{"model", model}, {"model_options", model_options}, {"encoder_weights", encoder_weights},
          {"input_mode", input_mode}, {"input_size", input_size}, {"crop_foreground_p", crop_foreground_p},
          {"crops_per_image", crops_per_image}, {"intensity", intensity}, {"batch_size", batch_size},
          {"epochs", epochs}, {"lr", lr}, {"weight_decay", weight_decay}, {"betas", {beta1, beta2}},
          {"plateau_patience", plateau_patience}, {"plateau_factor", plateau_factor}, {"min_lr", min_lr},
          {"early_stop_patience", early_stop_patience}, {"dice_weight", loss.dice_weight},
          {"bce_weight", loss.bce_weight}, {"pos_weight", pos_weight_auto ? nlohmann::json("auto") : nlohmann::json(loss.pos_weight)},
          {"eps", loss.eps}, {"augment", augment}, {"val_fraction", val_fraction}, {"seed", seed},
          {"max_minutes", max_minutes}};
  if (qat_bits) j["qat"] = {{"bits", qat_bits}, {"per_channel", qat_per_channel}};
  if (!teacher.empty()) j["distillation"] = {{"teacher", teacher}, {"alpha", distill_alpha}, {"temperature", distill_temperature}};
  if (progressive_start) j["progressive"] = {{"start", progressive_start}, {"epochs", progressive_epochs}};
  j["channels_last"] = channels_last;
  if (bf16) j["bf16"] = true;  // only when on: options recorded by older runs stay equal on resume
  if (augment_options.rot90) j["augment_rot90"] = true;
  if (prune_target > 0) j["gradual_pruning"] = {{"target", prune_target}, {"epochs", prune_epochs}};
  if (num_classes != 0) j["num_classes"] = num_classes;  // absent: from the data (binary runs as before)
  if (!loss.class_weights.empty()) j["class_weights"] = loss.class_weights;
  if (resize != "stretch") j["resize"] = resize;  // absent: stretch (runs and checkpoints as before)
  if (!init_from.empty()) j["init_from"] = init_from;  // absent: built from scratch (as before)
  return j;
}

std::vector<std::string> preset_names() { return {"hc18", "hc18-cpu", "bbbc010", "bbbc010-cpu", "demo", "folder"}; }

TrainOptions preset(const std::string& name) {
  TrainOptions o;  // defaults are the seed's recipe
  if (name == "hc18") return o;
  if (name == "hc18-cpu") {
    // M1 with the frozen ImageNet encoder at 160×160: a training step costs ~40% of 256².
    // Masks are upsampled to 800×540 for scoring, so HC is still measured at full resolution.
    o.input_size = 160;
    o.epochs = 30;
    o.pos_weight_auto = true;  // HC18 heads cover ~1/4 of the frame: 200 over-segments
    o.plateau_patience = 4;
    o.early_stop_patience = 8;
    o.max_minutes = 55;
    // bf16 mixed precision where the CPU has AVX512-BF16: the M1 step at 0.41–0.45× PyTorch's fp32
    // step, the same validation Dice and HC on three seeds (docs/results.md, HC18 ablation).
    o.bf16 = bf16_trains_fast_on_this_cpu();
    return o;
  }
  if (name == "bbbc010" || name == "bbbc010-cpu") {
    // Worms are 3–6 px wide: train on native-resolution crops, infer on the whole padded image.
    o.model = "efficient-unet";
    o.input_mode = "crop";
    o.crops_per_image = 4;
    if (name == "bbbc010-cpu") {
      // M1 with the frozen ImageNet encoder (needs --encoder-weights) on 384×384 crops, 2 per
      // image: the crops reach the well's dark rim, next to which worms are not annotated.
      // Against the earlier M3 from scratch on 192² crops (0.891) and M1 on them (0.907):
      // docs/results.md, BBBC010. bf16 where the CPU has AVX512-BF16, as hc18-cpu.
      o.model = "mobilenet-aspp-se-unet";
      o.input_size = 384;
      o.crops_per_image = 2;
      o.epochs = 40;
      o.pos_weight_auto = true;
      o.plateau_patience = 5;
      o.early_stop_patience = 10;
      o.max_minutes = 55;
      o.bf16 = bf16_trains_fast_on_this_cpu();
    }
    return o;
  }
  if (name == "demo") {
    o.model = "mobilenet-aspp-se-unet-lite";
    o.model_options = {{"encoder_frozen", false}};
    o.input_size = 96;
    o.batch_size = 8;
    o.epochs = 8;
    o.lr = 2e-3;
    o.pos_weight_auto = true;
    o.plateau_patience = 3;
    o.early_stop_patience = 6;
    return o;
  }
  if (name == "folder") {
    // A user's own image/mask folders: nothing is known about them, so no ImageNet file is
    // needed (M3 from scratch), the foreground fraction sets pos_weight, and the whole image is
    // resized (the `crop` input mode is for thin structures at native resolution).
    o.model = "efficient-unet";
    o.epochs = 60;
    o.lr = 1e-3;  // trained from scratch: a higher rate than the frozen-encoder recipes
    o.pos_weight_auto = true;
    o.plateau_patience = 5;
    o.early_stop_patience = 12;
    return o;
  }
  std::string names;
  for (const auto& n : preset_names()) names += (names.empty() ? "" : ", ") + n;
  throw Error("unknown preset '" + name + "' (known: " + names + ")");
}

}  // namespace leanseg
