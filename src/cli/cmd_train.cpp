// `leanseg train --preset P --data DIR --out RUN [...]`: the seed's training recipe end to end,
// then a final evaluation of best.safetensors on the validation split at original image size.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli_common.h"
#include "commands.h"
#include "launch.h"
#include "leanseg/compress.h"
#include "leanseg/error.h"
#include "leanseg/evaluate.h"
#include "leanseg/fs.h"
#include "leanseg/limits.h"
#include "leanseg/train.h"
#include "train/distributed_options.h"

namespace leanseg::cli {
namespace {

struct TrainArgs {
  std::string config, preset, data, dataset = "auto", out, model, encoder_weights, init_from, pos_weight, channels, stem_init;
  std::string model_options;  // JSON object merged into the model's options
  std::string class_weights;  // "w0,w1,..."
  int num_classes = 0;        // 0: from the masks
  ImageReadArgs read;         // --page, --channel, --intensity-range
  std::string resize;         // --resize stretch|letterbox ("": the preset's or config's)
  bool resume = false, no_augment = false, rot90 = false, no_progress = false, bf16 = false, nchw = !channels_last_trains_faster_on_this_cpu();
  bool layout_given = false, precision_given = false, distill_alpha_given = false, distill_temperature_given = false, freeze_encoder = false, train_encoder = false, freeze_encoder_bn = false;
  int epochs = 0, batch_size = 0, input_size = 0, crops_per_image = 0, stop_after = 0, seed = -1;
  double lr = 0, max_minutes = -1, val_fraction = 0;
  // recipe settings of the spec (seed §8); NaN / -1: not given
  double weight_decay = NAN, beta1 = NAN, beta2 = NAN, plateau_factor = NAN, min_lr = NAN;
  double dice_weight = NAN, bce_weight = NAN, eps = NAN;
  int plateau_patience = -1, early_stop_patience = -1;
  // strategies (T4)
  int qat_bits = 0, progressive = 0, progressive_epochs = 0, prune_epochs = 0;
  bool qat_per_channel = false;
  double prune_target = 0;
  DistillArgs distill;
  // data-parallel training (docs/distributed.md)
  LaunchOptions launch;
  bool sync_bn = false;
  double dist_timeout = 120, bucket_mb = 25;
};

// Who this process is: a worker started by the launcher or torchrun (environment), one rank of a
// multi-node run with one process per node (--nnodes without --nproc), or the only process.
DistributedOptions distributed_options(const TrainArgs& a) {
  DistributedOptions d = distributed_options_from_environment();
  if (!is_launched_worker() && a.launch.nnodes > 1) {
    require_usage(a.launch.master_port > 0, "train: --master-port is required with --nnodes > 1");
    d.world_size = a.launch.nnodes;
    d.rank = a.launch.node_rank;
    d.master_addr = a.launch.master_addr;
    d.master_port = a.launch.master_port;
  }
  d.timeout_seconds = a.dist_timeout;
  d.sync_batch_norm = a.sync_bn;
  d.bucket_megabytes = a.bucket_mb;
  return d;
}

template <class T>
void set_if(T& field, T value, bool given) {
  if (given) field = value;
}

// The recipe: the preset (--preset, else the config file's "preset", else hc18-cpu), the config
// file's keys on it, then the flags given on the command line.
TrainOptions resolve(const TrainArgs& a, std::string& preset_name) {
  nlohmann::json file = a.config.empty() ? nlohmann::json::object() : read_config_file(a.config);
  preset_name = !a.preset.empty() ? a.preset : file.contains("preset") && file["preset"].is_string() ? file["preset"].get<std::string>() : "hc18-cpu";
  TrainOptions o;
  try {
    o = preset(preset_name);
  } catch (const Error& e) {
    throw Error(a.preset.empty() && !a.config.empty() ? "config file '" + a.config + "': key 'preset': " + e.what() : e.what());
  }
  if (!a.config.empty()) apply_train_config(file, o, a.config);
  if (!a.model.empty()) o.model = a.model;
  if (!a.model.empty() && a.model.rfind("mobilenet", 0) != 0) o.model_options = nlohmann::json::object();
  if (!a.stem_init.empty()) o.model_options["stem_init"] = a.stem_init;
  if (a.freeze_encoder || a.train_encoder || a.freeze_encoder_bn) o.model_options["encoder_frozen"] = a.freeze_encoder;
  if (a.freeze_encoder_bn) o.model_options["encoder_bn_frozen"] = true;
  if (!a.model_options.empty()) {
    nlohmann::json extra;
    try {
      extra = nlohmann::json::parse(a.model_options);
    } catch (const nlohmann::json::exception& e) {
      throw UsageError("--model-options: not JSON: " + std::string(e.what()));
    }
    require_usage(extra.is_object(), "--model-options: expected a JSON object, e.g. '{\"channels\": [8, 8, 16, 16, 32, 32]}'");
    o.model_options.update(extra);
  }
  if (!a.encoder_weights.empty()) o.encoder_weights = a.encoder_weights;
  if (!a.init_from.empty()) o.init_from = a.init_from;
  if (a.epochs) o.epochs = a.epochs;
  if (a.batch_size) o.batch_size = a.batch_size;
  if (a.input_size) o.input_size = a.input_size;
  if (a.crops_per_image) o.crops_per_image = a.crops_per_image;
  if (!a.resize.empty()) o.resize = a.resize;
  if (a.lr) o.lr = a.lr;
  if (a.seed >= 0) o.seed = static_cast<uint64_t>(a.seed);
  if (a.max_minutes >= 0) o.max_minutes = a.max_minutes;
  if (a.val_fraction) o.val_fraction = a.val_fraction;
  set_if(o.weight_decay, a.weight_decay, !std::isnan(a.weight_decay));
  set_if(o.beta1, a.beta1, !std::isnan(a.beta1));
  set_if(o.beta2, a.beta2, !std::isnan(a.beta2));
  set_if(o.plateau_factor, a.plateau_factor, !std::isnan(a.plateau_factor));
  set_if(o.min_lr, a.min_lr, !std::isnan(a.min_lr));
  set_if(o.loss.dice_weight, a.dice_weight, !std::isnan(a.dice_weight));
  set_if(o.loss.bce_weight, a.bce_weight, !std::isnan(a.bce_weight));
  set_if(o.loss.eps, a.eps, !std::isnan(a.eps));
  set_if(o.plateau_patience, a.plateau_patience, a.plateau_patience >= 0);
  set_if(o.early_stop_patience, a.early_stop_patience, a.early_stop_patience >= 0);
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
  if (a.layout_given || a.config.empty()) o.channels_last = !a.nchw;  // a.nchw starts as !channels_last_trains_faster_on_this_cpu()
  if (a.precision_given) o.bf16 = a.bf16;  // otherwise the preset's or config's
  if (o.bf16 && !bf16_trains_fast_on_this_cpu())
    std::fprintf(stderr, "warning: --bf16 on a CPU without AVX512-BF16: LibTorch emulates bfloat16 here, slower than float32\n");
  o.stop_after_epochs = a.stop_after;
  o.out_dir = a.out;
  if (a.qat_bits) o.qat_bits = a.qat_bits;
  if (a.qat_per_channel) o.qat_per_channel = true;
  require_usage(o.qat_bits || !o.qat_per_channel, "--qat-per-channel needs --qat BITS");
  try {
    if (o.qat_bits) check_bits(o.qat_bits);
  } catch (const Error& e) {
    throw Error("--qat " + std::to_string(o.qat_bits) + ": quantization-aware training: " + e.what());
  }
  if (!a.distill.teacher.empty() || a.config.empty()) {
    apply_distill(a.distill, o);
  } else {  // the config file's teacher, with the CLI's alpha or T if given
    set_if(o.distill_alpha, a.distill.alpha, a.distill_alpha_given);
    set_if(o.distill_temperature, a.distill.temperature, a.distill_temperature_given);
  }
  if (a.progressive) o.progressive_start = a.progressive;
  if (a.progressive_epochs) o.progressive_epochs = a.progressive_epochs;
  if (a.prune_target) o.prune_target = a.prune_target;
  if (a.prune_epochs) o.prune_epochs = a.prune_epochs;
  return o;
}

void run_train(const TrainArgs& a) {
  std::string preset_name;
  TrainOptions o = resolve(a, preset_name);
  require_usage(a.launch.node_rank < a.launch.nnodes, "train: --node-rank must be below --nnodes");
  // The data: --data/--dataset/--channels, else the config file's "data" section.
  const nlohmann::json source = o.data_source.is_object() ? o.data_source : nlohmann::json::object();
  const std::string dir = !a.data.empty() ? a.data : source.value("dir", "");
  require_usage(!dir.empty(), "train: --data DIR is required" + std::string(a.config.empty() ? "" : " (or data: dir: in the config file)"));
  if (a.launch.nproc > 1 && !is_launched_worker()) {
    const int code = launch_workers(a.launch);
    if (code != 0) throw Error("train: the data-parallel run failed (exit code " + std::to_string(code) + ")");
    return;
  }
  const DistributedOptions dist = distributed_options(a);
  const std::string kind = a.dataset != "auto" ? a.dataset : source.value("dataset", preset_name == "folder" ? "folder" : "auto");
  const std::vector<std::string> channels =
      !a.channels.empty() ? split_channels(a.channels) : source.value("channels", std::vector<std::string>{});
  const Dataset data = load_dataset(dir, kind, channels, a.num_classes, image_read_options(a.read));
  o.data_source = {{"dir", std::filesystem::absolute(dir).lexically_normal().string()}, {"dataset", kind}, {"channels", channels}};
  if (dist.is_main())
    std::cerr << "dataset " << data.kind << ": " << data.samples.size() << " images, channels "
              << nlohmann::json(data.channels).dump() << ", " << data.num_classes << " classes; model " << o.model << " @ " << o.input_size << " ("
              << o.input_mode << "), preset " << preset_name << (a.config.empty() ? "" : ", config " + a.config) << "\n";
  if (!dist.is_main()) o.progress = false;
  const TrainResult r = train_model(data, o, dist);
  if (!dist.is_main()) return;  // rank 0 alone evaluates and writes
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
  cmd->add_option("--config", a->config,
                  "Run configuration (.yaml, .yml or .json): recipe keys as in RUN/config.json, which every run writes; "
                  "flags given here override it")
      ->check(CLI::ExistingFile);
  cmd->add_option("--preset", a->preset, "Recipe the config file and flags apply to: " + presets + " (default: hc18-cpu)");
  add_dataset_options(cmd, a->data, a->dataset, "to train on (HC18, BBBC010 or images/ + masks/ layout)");
  cmd->add_option("--channels", a->channels, "BBBC010 channels: w1, w2 or w1,w2");
  add_image_read_options(cmd, a->read);
  cli_conventions::add_out_option(*cmd, a->out, "Run folder")->required();
  add_model_option(cmd, a->model, ModelArg::Name)->description("Registry name of the architecture, over the preset's (`leanseg info` lists them)");
  cmd->add_option("--model-options", a->model_options, "JSON object of model options over the model's defaults "
                  "(see `leanseg info`), e.g. '{\"channels\": [8, 8, 16, 16, 32, 32]}'");
  cmd->add_option("--init-from", a->init_from,
                  "Start from this model file's weights (e.g. RUN/best.safetensors, to fine-tune it with "
                  "--model-options '{\"encoder_frozen\": false}' and a low --lr); tensors must match by name and shape");
  cmd->add_option("--encoder-weights", a->encoder_weights, "torchvision-named ImageNet safetensors of the model's encoder (MobileNetV2 for M1/M4, ResNet for unet-resnet18/34)");
  cmd->add_flag("--resume", a->resume, "Continue from RUN/checkpoint.safetensors");
  cmd->add_flag("--nchw,!--channels-last", a->nchw,
                "Memory layout of the training step: NCHW or channels-last (NHWC). Default: the one measured faster "
                "on this kind of CPU (channels-last with AVX-512, NCHW without); --resume keeps the run's layout");
  cmd->add_flag("--bf16,!--fp32", a->bf16,
                "bf16 mixed precision: convolutions and matmuls of the training step in bfloat16 (AVX512-BF16 "
                "CPUs), weights, gradients and the optimizer's state in float32; validation and the saved model in float32. "
                "--fp32: the whole step in float32. Default: the preset's or config's (hc18-cpu: bf16 on AVX512-BF16 CPUs); "
                "--resume keeps the run's precision");
  cmd->add_option("--epochs", a->epochs, "Maximum epochs")->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", a->batch_size, "Images per optimizer step (per process with --nproc)")->check(CLI::PositiveNumber);
  cmd->add_option("--input-size", a->input_size, "Model input / crop size (multiple of 32)")->check(CLI::PositiveNumber);
  cmd->add_option("--crops-per-image", a->crops_per_image, "Input mode crop: random crops taken from each training image per epoch")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--resize", a->resize,
                  "Whole-image resizing: stretch (each axis to the input size) or letterbox (keep the aspect ratio, "
                  "pad with zeros); recorded in the model, so eval/predict/leanseg-infer do the same and crop the "
                  "padding before resizing predictions back")
      ->check(CLI::IsMember({"stretch", "letterbox"}));
  cmd->add_option("--lr", a->lr, "Initial learning rate")->check(CLI::PositiveNumber);
  cmd->add_option("--pos-weight", a->pos_weight, "BCE positive weight: a number or 'auto'");
  cmd->add_option("--num-classes", a->num_classes,
                  "Classes including background (2: binary masks; K >= 3: label masks 0..K-1). Default: from the masks")
      ->check(CLI::Range(2, kMaxClasses));
  cmd->add_option("--class-weights", a->class_weights,
                  "Multi-class: cross-entropy weight of each class, background first, e.g. 0.2,1,1");
  cmd->add_option("--seed", a->seed, "Seed of the split, the initialisation and the augmentation")->check(CLI::NonNegativeNumber);
  cmd->add_option("--val-fraction", a->val_fraction, "Share of the images held out for validation")->check(CLI::Range(0.01, 0.9));
  cmd->add_option("--max-minutes", a->max_minutes, "Stop after the epoch that crosses this time (0 = none)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--stop-after", a->stop_after, "Stop after N epochs of this process (testing resume)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--no-augment", a->no_augment, "Train without data augmentation");
  cmd->add_flag("--rot90", a->rot90,
                "Augment with quarter turns too (with the flip: all 8 symmetries of the square); for images without "
                "a canonical orientation, e.g. microscopy. Give it again with --resume");
  cmd->add_flag("--no-progress", a->no_progress, "No progress bar (one line per epoch)");
  auto* recipe = "Recipe settings (default: the preset's)";
  cmd->add_option("--weight-decay", a->weight_decay, "Adam's L2 weight decay")->check(CLI::NonNegativeNumber)->group(recipe);
  cmd->add_option("--beta1", a->beta1, "Adam's beta1")->check(CLI::Range(0.0, 0.999999))->group(recipe);
  cmd->add_option("--beta2", a->beta2, "Adam's beta2")->check(CLI::Range(0.0, 0.999999))->group(recipe);
  cmd->add_option("--plateau-patience", a->plateau_patience,
                  "Lower the rate after more than this many epochs without a better validation Dice")
      ->check(CLI::NonNegativeNumber)->group(recipe);
  cmd->add_option("--plateau-factor", a->plateau_factor, "Multiply the rate by this on a plateau")
      ->check(CLI::Range(1e-9, 0.999999))->group(recipe);
  cmd->add_option("--min-lr", a->min_lr, "The plateau rule's floor for the rate")->check(CLI::NonNegativeNumber)->group(recipe);
  cmd->add_option("--early-stop-patience", a->early_stop_patience, "Stop after this many epochs without a new best")
      ->check(CLI::PositiveNumber)->group(recipe);
  cmd->add_option("--dice-weight", a->dice_weight, "Weight of the Dice term of the loss")->check(CLI::NonNegativeNumber)->group(recipe);
  cmd->add_option("--bce-weight", a->bce_weight, "Weight of the BCE term of the loss")->check(CLI::NonNegativeNumber)->group(recipe);
  cmd->add_option("--eps", a->eps, "Smoothing epsilon of the soft Dice")->check(CLI::Range(1e-30, 1.0))->group(recipe);
  auto* freeze = cmd->add_flag("--freeze-encoder", a->freeze_encoder, "Keep the pretrained encoder's weights fixed (M1/M4, unet-resnet*)")->group(recipe);
  cmd->add_flag("--train-encoder", a->train_encoder, "Train the pretrained encoder too (M1/M4, unet-resnet*)")->excludes(freeze)->group(recipe);
  cmd->add_flag("--freeze-encoder-bn", a->freeze_encoder_bn,
                "Train the pretrained encoder's weights but keep its BatchNorm running statistics (eval mode): "
                "fine-tuning at small batches, e.g. a second stage with --init-from and a low --lr (M1/M4, unet-resnet*)")
      ->excludes(freeze)->group(recipe);
  cmd->add_option("--stem-init", a->stem_init,
                  "First conv of the ImageNet encoder for 1-channel input: mean or sum of its RGB filters (M1/M4, unet-resnet*)")
      ->check(CLI::IsMember({"mean", "sum"}))->group(recipe);
  auto* strategies = "Training strategies";
  add_qat_option(cmd, a->qat_bits, "Quantization-aware training at BITS")->group(strategies);
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
  auto* distributed = "Data-parallel training (torchrun's launch options; docs/distributed.md)";
  cmd->add_option("--nproc", a->launch.nproc, "Worker processes on this node (--batch-size is per process)")
      ->check(CLI::PositiveNumber)->group(distributed);
  cmd->add_option("--nnodes", a->launch.nnodes, "Nodes (machines) of the run")->check(CLI::PositiveNumber)->group(distributed);
  cmd->add_option("--node-rank", a->launch.node_rank, "This node's index in [0, --nnodes)")
      ->check(CLI::NonNegativeNumber)->group(distributed);
  cmd->add_option("--master-addr", a->launch.master_addr, "Address of node 0 (it hosts the rendezvous store)")
      ->capture_default_str()->group(distributed);
  cmd->add_option("--master-port", a->launch.master_port, "Port of the rendezvous store on node 0 (default with one node: a free port)")
      ->check(CLI::Range(1, 65535))->group(distributed);
  cmd->add_flag("--sync-bn", a->sync_bn, "BatchNorm statistics over all ranks' batches (SyncBatchNorm)")->group(distributed);
  cmd->add_option("--dist-timeout", a->dist_timeout, "Seconds a rank may stop responding (hung or dead) before the others stop, naming it")
      ->check(CLI::PositiveNumber)->capture_default_str()->group(distributed);
  cmd->add_option("--bucket-mb", a->bucket_mb, "Gradient all-reduce bucket size in MB (DDP's bucket_cap_mb)")
      ->check(CLI::PositiveNumber)->capture_default_str()->group(distributed);
  cmd->callback([a, cmd] {
    a->layout_given = cmd->get_option("--nchw")->count() > 0;
    a->precision_given = cmd->get_option("--bf16")->count() > 0;
    a->distill_alpha_given = cmd->get_option("--distill-alpha")->count() > 0;
    a->distill_temperature_given = cmd->get_option("--distill-temperature")->count() > 0;
    run_train(*a);
  });
}

}  // namespace leanseg::cli
