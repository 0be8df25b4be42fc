// `leanseg train --preset P --data DIR --out RUN [...]`: the seed's training recipe end to end,
// then a final evaluation of best.safetensors on the validation split at original image size.
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli_common.h"
#include "commands.h"
#include "leanseg/compress.h"
#include "leanseg/error.h"
#include "leanseg/evaluate.h"
#include "leanseg/fs.h"
#include "leanseg/limits.h"
#include "leanseg/train.h"

namespace leanseg::cli {
namespace {

struct TrainArgs {
  std::string preset = "hc18-cpu", data, dataset = "auto", out, model, encoder_weights, pos_weight, channels;
  std::string class_weights;  // "w0,w1,..."
  int num_classes = 0;        // 0: from the masks
  bool resume = false, no_augment = false, rot90 = false, no_progress = false, nchw = !channels_last_trains_faster_on_this_cpu();
  int epochs = 0, batch_size = 0, input_size = 0, stop_after = 0, seed = -1;
  double lr = 0, max_minutes = -1, val_fraction = 0;
  // strategies (T4)
  int qat_bits = 0, progressive = 0, progressive_epochs = 0, prune_epochs = 0;
  bool qat_per_channel = false;
  double prune_target = 0;
  DistillArgs distill;
};

TrainOptions resolve(const TrainArgs& a) {
  TrainOptions o = preset(a.preset);
  if (!a.model.empty()) o.model = a.model;
  if (!a.model.empty() && a.model.rfind("mobilenet", 0) != 0) o.model_options = nlohmann::json::object();
  if (!a.encoder_weights.empty()) o.encoder_weights = a.encoder_weights;
  if (a.epochs) o.epochs = a.epochs;
  if (a.batch_size) o.batch_size = a.batch_size;
  if (a.input_size) o.input_size = a.input_size;
  if (a.lr) o.lr = a.lr;
  if (a.seed >= 0) o.seed = static_cast<uint64_t>(a.seed);
  if (a.max_minutes >= 0) o.max_minutes = a.max_minutes;
  if (a.val_fraction) o.val_fraction = a.val_fraction;
  if (!a.pos_weight.empty()) {
    o.pos_weight_auto = a.pos_weight == "auto";
    if (!o.pos_weight_auto) o.loss.pos_weight = parse_positive(a.pos_weight, "--pos-weight");
  }
  o.num_classes = a.num_classes;
  if (!a.class_weights.empty()) o.loss.class_weights = parse_class_weights(a.class_weights);
  if (a.no_augment) o.augment = false;
  if (a.rot90) o.augment_options.rot90 = true;
  o.progress = !a.no_progress;
  o.resume = a.resume;
  o.channels_last = !a.nchw;  // a.nchw starts as !channels_last_trains_faster_on_this_cpu()
  o.stop_after_epochs = a.stop_after;
  o.out_dir = a.out;
  o.qat_bits = a.qat_bits;
  o.qat_per_channel = a.qat_per_channel;
  require(a.qat_bits || !a.qat_per_channel, "--qat-per-channel needs --qat BITS");
  try {
    if (a.qat_bits) check_bits(a.qat_bits);
  } catch (const Error& e) {
    throw Error("--qat " + std::to_string(a.qat_bits) + ": quantization-aware training: " + e.what());
  }
  apply_distill(a.distill, o);
  o.progressive_start = a.progressive;
  o.progressive_epochs = a.progressive_epochs;
  o.prune_target = a.prune_target;
  o.prune_epochs = a.prune_epochs;
  return o;
}

void run_train(const TrainArgs& a) {
  require(!a.data.empty(), "train: --data DIR is required");
  TrainOptions o = resolve(a);
  const Dataset data = load_dataset(a.data, a.dataset, split_channels(a.channels), a.num_classes);
  std::cerr << "dataset " << data.kind << ": " << data.samples.size() << " images, channels "
            << nlohmann::json(data.channels).dump() << ", " << data.num_classes << " classes; model " << o.model << " @ " << o.input_size << " ("
            << o.input_mode << "), preset " << a.preset << "\n";
  const TrainResult r = train_model(data, o);
  std::cerr << "stopped: " << r.stop_reason << "; best val Dice " << r.best_val_dice << " at epoch " << r.best_epoch
            << " (" << format_seconds(r.seconds) << ")\n";
  // Final scores at original resolution on the validation split.
  const LoadedModel best = load_model(o.out_dir + "/best.safetensors");
  const Split split = grouped_split(data, o.val_fraction, o.seed);
  EvalReport rep = evaluate(best, data, split.val);
  rep.file_bytes = static_cast<int64_t>(std::filesystem::file_size(o.out_dir + "/best.safetensors"));
  nlohmann::json j = rep.to_json(true);
  j["train_seconds"] = r.seconds;
  j["epochs_run"] = r.epochs_run;
  j["best_epoch"] = r.best_epoch;
  j["stop_reason"] = r.stop_reason;
  atomic_write(o.out_dir + "/eval_val.json", [&](std::ostream& out) { out << j.dump(2) << "\n"; });
  print_report_summary(rep, "validation split (original resolution)");
}

}  // namespace

void add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train a model (writes best/last model, metrics, curves, split)");
  std::string presets;
  for (const auto& p : preset_names()) presets += (presets.empty() ? "" : ", ") + p;
  cmd->add_option("--preset", a->preset, "Recipe: " + presets)->capture_default_str();
  cmd->add_option("--data", a->data, "Dataset folder (HC18, BBBC010 or images/+masks/ layout)");
  cmd->add_option("--dataset", a->dataset, "hc18, bbbc010, folder or auto")->capture_default_str();
  cmd->add_option("--channels", a->channels, "BBBC010 channels: w1, w2 or w1,w2");
  cmd->add_option("--out", a->out, "Run folder")->required();
  cmd->add_option("--model", a->model, "Override the preset's model");
  cmd->add_option("--encoder-weights", a->encoder_weights, "ImageNet MobileNetV2 safetensors for M1/M4");
  cmd->add_flag("--resume", a->resume, "Continue from RUN/checkpoint.safetensors");
  cmd->add_flag("--nchw,!--channels-last", a->nchw,
                "Memory layout of the training step: NCHW or channels-last (NHWC). Default: the one measured faster "
                "on this kind of CPU (channels-last with AVX-512, NCHW without); --resume keeps the run's layout");
  cmd->add_option("--epochs", a->epochs, "Maximum epochs")->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", a->batch_size)->check(CLI::PositiveNumber);
  cmd->add_option("--input-size", a->input_size, "Model input / crop size (multiple of 32)")->check(CLI::PositiveNumber);
  cmd->add_option("--lr", a->lr, "Initial learning rate")->check(CLI::PositiveNumber);
  cmd->add_option("--pos-weight", a->pos_weight, "BCE positive weight: a number or 'auto'");
  cmd->add_option("--num-classes", a->num_classes,
                  "Classes including background (2: binary masks; K >= 3: label masks 0..K-1). Default: from the masks")
      ->check(CLI::Range(2, kMaxClasses));
  cmd->add_option("--class-weights", a->class_weights,
                  "Multi-class: cross-entropy weight of each class, background first, e.g. 0.2,1,1");
  cmd->add_option("--seed", a->seed)->check(CLI::NonNegativeNumber);
  cmd->add_option("--val-fraction", a->val_fraction)->check(CLI::Range(0.01, 0.9));
  cmd->add_option("--max-minutes", a->max_minutes, "Stop after the epoch that crosses this time (0 = none)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--stop-after", a->stop_after, "Stop after N epochs of this process (testing resume)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--no-augment", a->no_augment);
  cmd->add_flag("--rot90", a->rot90,
                "Augment with quarter turns too (with the flip: all 8 symmetries of the square); for images without "
                "a canonical orientation, e.g. microscopy. Give it again with --resume");
  cmd->add_flag("--no-progress", a->no_progress);
  auto* strategies = "Training strategies";
  cmd->add_option("--qat", a->qat_bits, "Quantization-aware training at 8, 4 or 2 bits (straight-through estimator)")
      ->group(strategies);
  cmd->add_flag("--qat-per-channel", a->qat_per_channel, "QAT with one scale per output channel")->group(strategies);
  add_distill_options(cmd, a->distill);
  cmd->add_option("--progressive", a->progressive, "Progressive resizing: start at this input size (multiple of 32)")
      ->group(strategies);
  cmd->add_option("--progressive-epochs", a->progressive_epochs, "Epochs to reach the full input size (default: half)")
      ->group(strategies);
  cmd->add_option("--prune-schedule", a->prune_target,
                  "Pruning-aware training: magnitude sparsity ramping to this value (cubic schedule)")
      ->group(strategies);
  cmd->add_option("--prune-epochs", a->prune_epochs, "Epochs to reach the target sparsity (default: half)")->group(strategies);
  cmd->callback([a] { run_train(*a); });
}

}  // namespace leanseg::cli
