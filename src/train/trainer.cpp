// The training loop (seed §8): DiceBCE, Adam, ReduceLROnPlateau on validation Dice, early
// stopping, best/last model files and a checkpoint after every epoch.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <opencv2/core/utility.hpp>

#include "batch_loader.h"
#include "checkpoint.h"
#include "distributed.h"
#include "strategies.h"
#include "schedule.h"
#include "leanseg/error.h"
#include "leanseg/fs.h"
#include "leanseg/inference.h"
#include "leanseg/metrics.h"
#include "leanseg/model_file.h"
#include "leanseg/ops.h"
#include "leanseg/plot.h"
#include "leanseg/progress.h"
#include "leanseg/tensor_io.h"
#include "models/encoder.h"

namespace leanseg {

bool channels_last_trains_faster_on_this_cpu() { return __builtin_cpu_supports("avx512f"); }
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// LEANSEG_TRAIN_FLOAT64=1: weights, batches and optimizer state in double precision (about twice
// as slow; model files are still written in float32, the checkpoint keeps the doubles). A
// verification switch, not a recipe option: in float32 this small network and Adam amplify
// rounding (summation order) to ~1e-2 relative after a few steps, which hides whether two
// computations are the same; in double they agree to rounding (docs/distributed.md).
bool train_in_float64() {
  const char* v = std::getenv("LEANSEG_TRAIN_FLOAT64");
  return v && std::string(v) == "1";
}

// The floating-point type the model's weights are in (what its inputs must be converted to).
torch::ScalarType weights_type(SegmentationModel& model) {
  for (const auto& p : model->parameters()) return p.scalar_type();
  return torch::kFloat;
}

// The model's floating-point parameters and buffers in `type`, in place (set_data: the same
// tensors, so an optimizer's references stay valid). Not Module::to, which would convert the
// integral BatchNorm counters too.
void convert_weights(SegmentationModel& model, torch::ScalarType type) {
  torch::NoGradGuard no_grad;
  for (auto& t : model->parameters())
    if (t.scalar_type() != type) t.set_data(t.data().to(type));
  for (auto& t : model->buffers())
    if (t.is_floating_point() && t.scalar_type() != type) t.set_data(t.data().to(type));
}

// save_model, in float32 whatever the training type: model files hold float32 (readers refuse
// other types). A float64 run's weights keep their double values (the checkpoint holds them).
void save_model_file(const std::string& path, SegmentationModel& model, const Preprocessing& pre,
                     const nlohmann::json& provenance) {
  if (weights_type(model) == torch::kFloat) return save_model(path, model, pre, provenance);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> exact;
  for (const auto& [name, t] : state_dict(*model)) exact.push_back(t.detach().clone());
  const auto type = weights_type(model);
  std::exception_ptr failure;
  convert_weights(model, torch::kFloat);
  try {
    save_model(path, model, pre, provenance);
  } catch (...) {
    failure = std::current_exception();
  }
  convert_weights(model, type);
  size_t i = 0;
  for (auto& [name, t] : state_dict(*model)) t.detach().copy_(exact[i++]);
  if (failure) std::rethrow_exception(failure);
}

// A batch in the model's floating-point type (class-index masks stay integral).
void to_weights_type(SegmentationModel& model, torch::Tensor& images, torch::Tensor& masks) {
  const auto type = weights_type(model);
  if (images.scalar_type() != type) images = images.to(type);
  if (masks.is_floating_point() && masks.scalar_type() != type) masks = masks.to(type);
}

void set_lr(torch::optim::Adam& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
}

SegmentationModel build_model(const TrainOptions& o, int in_channels, int num_classes) {
  ModelConfig cfg;
  cfg.arch = o.model;
  cfg.in_channels = in_channels;
  cfg.num_classes = num_classes;
  cfg.options = o.model_options;
  SegmentationModel model = create_model(cfg);
  const auto& opts = model->config().options;
  if (!o.encoder_weights.empty()) {
    load_encoder_weights(*model, o.encoder_weights);
  } else if (opts.value("encoder_frozen", false)) {
    std::cerr << "warning: the encoder is frozen but no --encoder-weights was given: the decoder will learn on "
                 "random features\n";
  }
  return model;
}

// --init-from: a trained model file's weights into the model this run built (same architecture,
// possibly other options that change no tensor, such as an unfrozen encoder).
void init_from_model_file(SegmentationModel& model, const std::string& path) {
  const LoadedModel from = load_model(path);
  const std::string arch = from.model->config().arch;
  require(arch == model->config().arch, "--init-from '" + path + "' holds a " + arch + " but this run trains a " +
                                            model->config().arch);
  const auto params = from.model->named_parameters(true);
  const auto buffers = from.model->named_buffers(true);
  torch::NoGradGuard no_grad;
  auto copy = [&](const std::string& name, torch::Tensor& to, const torch::Tensor* source) {
    require(source != nullptr, "--init-from '" + path + "' has no tensor '" + name + "' (model options differ?)");
    require(source->sizes() == to.sizes(), "--init-from '" + path + "': tensor '" + name + "' is " +
                                               shape_string(*source) + " but this run's model has " +
                                               shape_string(to) + " (model options differ?)");
    to.copy_(*source);
  };
  for (auto& p : model->named_parameters(true)) copy(p.key(), p.value(), params.find(p.key()));
  for (auto& b : model->named_buffers(true)) copy(b.key(), b.value(), buffers.find(b.key()));
}

TrainingSet prepare_training_set(const Dataset& d, const std::vector<size_t>& idx, const TrainOptions& o) {
  TrainingSet set;
  for (size_t i : idx) {
    const auto& s = d.samples[i];
    if (o.input_mode == "resize" && o.resize == "letterbox") {
      set.images.push_back(letterbox_image(s.image, o.input_size, o.input_size));
      set.masks.push_back(letterbox_mask(s.mask, o.input_size, o.input_size));
    } else if (o.input_mode == "resize") {
      set.images.push_back(resize_image(s.image, o.input_size, o.input_size));
      set.masks.push_back(resize_mask(s.mask, o.input_size, o.input_size));
    } else {
      set.images.push_back(s.image);
      set.masks.push_back(s.mask);
    }
  }
  return set;
}

std::vector<size_t> epoch_order(size_t n, const TrainOptions& o, int epoch) {
  std::vector<size_t> order;
  for (int c = 0; c < std::max(1, o.crops_per_image); ++c)
    for (size_t i = 0; i < n; ++i) order.push_back(i);
  std::mt19937_64 rng(o.seed * 7919 + static_cast<uint64_t>(epoch));
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

// This rank's items of the epoch (DistributedSampler's rule) and their positions in the
// epoch's order; everything with one process.
struct EpochShard {
  std::vector<size_t> items, positions;
};

EpochShard epoch_shard(std::vector<size_t> order, const DataParallel* dp) {
  if (!dp) return {std::move(order), {}};
  EpochShard shard;
  shard.positions = shard_positions(order.size(), dp->rank(), dp->world_size());
  for (size_t p : shard.positions) shard.items.push_back(order[p % order.size()]);
  return shard;
}

double train_epoch(SegmentationModel model, torch::optim::Adam& opt, const TrainingSet& set, const TrainOptions& o,
                   const Preprocessing& pre, int epoch, TrainingStrategies& strategies, DataParallel* dp) {
  model->train();
  strategies.begin_epoch(model, epoch);
  torch::manual_seed(o.seed * 1000003 + static_cast<uint64_t>(epoch));  // dropout: reproducible per epoch
  EpochShard shard = epoch_shard(epoch_order(set.images.size(), o, epoch), dp);
  BatchLoader loader(set, std::move(shard.items), o, pre, epoch, std::move(shard.positions));
  ProgressBar bar("epoch " + std::to_string(epoch) + "/" + std::to_string(o.epochs), loader.batches(),
                  o.progress && (!dp || dp->is_main()));
  double sum = 0, seen = 0;
  for (size_t b = 0; b < loader.batches(); ++b) {
    Batch batch = loader.next();
    strategies.resize_batch(batch.images, batch.masks, epoch);
    to_weights_type(model, batch.images, batch.masks);
    if (o.channels_last) batch.images = to_channels_last(batch.images);
    opt.zero_grad();
    double value = 0, count = static_cast<double>(batch.images.size(0));
    {
      const auto quantized = strategies.quantized(model);  // QAT: forward/backward on quantized weights
      torch::Tensor loss;
      {
        Bf16Autocast autocast(o.bf16);
        loss = strategies.loss(model, batch.images, batch.masks, o.loss);
      }
      value = loss.item<double>();
      // Every rank runs backward, whatever its loss: the gradient all-reduce needs all of them.
      if (dp) dp->before_backward();
      if (dp || std::isfinite(value)) loss.backward();
      if (dp) dp->after_backward();
    }
    if (dp) {  // the step's loss over all ranks' batches (non-finite on every rank if on one)
      const auto total = dp->sum({value * count, count});
      value = total[0] / total[1], count = total[1];
    }
    if (!std::isfinite(value))
      throw Error(std::string("training stopped: the loss became ") + (std::isnan(value) ? "NaN" : "infinite") + " at epoch " + std::to_string(epoch) +
                  ", batch " + std::to_string(b + 1) + "; the last good checkpoint is kept in " + o.out_dir +
                  " (try a lower --lr)");
    opt.step();
    strategies.after_step(model);
    if (o.after_step) o.after_step(model);
    sum += value * count;
    seen += count;
    char status[64];
    std::snprintf(status, sizeof status, "loss %.4f", sum / seen);
    bar.update(static_cast<int64_t>(b + 1), status);
  }
  return sum / std::max(1.0, seen);
}

struct ValScores {
  double loss = 0, dice = 0, iou = 0, count = 0;  // sums over images, then means (averaged)
  ValScores averaged() const {
    const double n = std::max(1.0, count);
    return {loss / n, dice / n, iou / n, count};
  }
};

// This rank's validation images: every world_size-th (all with one process).
std::vector<size_t> validation_shard(size_t n, const DataParallel* dp) {
  std::vector<size_t> items;
  for (size_t i = dp ? static_cast<size_t>(dp->rank()) : 0; i < n; i += dp ? static_cast<size_t>(dp->world_size()) : 1)
    items.push_back(i);
  return items;
}

// Sums of the scores of `items` of `val`. Resize mode: the cached model-size images in
// batches. Crop mode: whole images, padded.
ValScores validate(SegmentationModel model, const TrainingSet& val, const std::vector<size_t>& items,
                   const TrainOptions& o, const Preprocessing& pre) {
  torch::NoGradGuard no_grad;
  model->eval();
  ValScores s;
  const size_t n = items.size();
  const size_t step = o.input_mode == "resize" ? static_cast<size_t>(o.batch_size) : 1;
  for (size_t b = 0; b < n; b += step) {
    std::vector<cv::Mat> ims, ms;
    for (size_t k = b; k < std::min(n, b + step); ++k) {
      const size_t i = items[k];
      ims.push_back(o.input_mode == "resize" ? val.images[i] : pad_to_multiple(val.images[i], model->size_divisor(), true));
      ms.push_back(o.input_mode == "resize" ? val.masks[i] : pad_to_multiple(val.masks[i], model->size_divisor(), false));
    }
    auto images = images_to_batch(ims, pre);
    auto target = masks_to_batch(ms);
    to_weights_type(model, images, target);
    auto logits = model->forward(images);
    if (o.input_mode != "resize") {  // score only the original area
      const int h = val.images[items[b]].rows, w = val.images[items[b]].cols;
      logits = logits.slice(2, 0, h).slice(3, 0, w);
      target = target.slice(2, 0, h).slice(3, 0, w);
    }
    s.loss += segmentation_loss(logits, target, o.loss).item<double>() * logits.size(0);
    const int64_t k = logits.size(1);
    auto pred = (k == 1 ? (logits > 0) : logits.argmax(1, /*keepdim=*/true)).to(torch::kUInt8).contiguous();
    auto tgt = target.to(torch::kUInt8).contiguous();
    for (int64_t i = 0; i < pred.size(0); ++i) {
      cv::Mat p(static_cast<int>(pred.size(2)), static_cast<int>(pred.size(3)), CV_8UC1, pred[i][0].data_ptr());
      cv::Mat t(static_cast<int>(tgt.size(2)), static_cast<int>(tgt.size(3)), CV_8UC1, tgt[i][0].data_ptr());
      if (k == 1) {
        const Overlap ov = overlap(p, t);
        s.dice += ov.dice();
        s.iou += ov.iou();
      } else {
        const auto per_class = class_overlaps(p, t, static_cast<int>(k));
        s.dice += mean_foreground_dice(per_class);
        s.iou += mean_foreground_iou(per_class);
      }
    }
  }
  s.count = static_cast<double>(n);
  return s;
}

// Validation of the whole split: each rank scores its shard, the sums are reduced. Per-image
// Dice and IoU are exactly a single process's; the loss is averaged per batch, so it moves
// slightly with the shard's batch composition (DiceBCE's Dice term is over the batch).
ValScores validate_all(SegmentationModel model, const TrainingSet& val, const TrainOptions& o, const Preprocessing& pre,
                       DataParallel* dp) {
  ValScores s = validate(model, val, validation_shard(val.images.size(), dp), o, pre);
  if (dp) {
    const auto total = dp->sum({s.loss, s.dice, s.iou, s.count});
    s = {total[0], total[1], total[2], total[3]};
  }
  return s.averaged();
}

void write_metrics(const std::string& dir, const std::vector<EpochMetrics>& h) {
  atomic_write(dir + "/metrics.csv", [&](std::ostream& out) {
    out << "epoch,train_loss,val_loss,val_dice,val_iou,lr,seconds\n";
    for (const auto& m : h)
      out << m.epoch << "," << m.train_loss << "," << m.val_loss << "," << m.val_dice << "," << m.val_iou << "," << m.lr
          << "," << m.seconds << "\n";
  });
  nlohmann::json j = nlohmann::json::array();
  for (const auto& m : h)
    j.push_back({{"epoch", m.epoch}, {"train_loss", m.train_loss}, {"val_loss", m.val_loss}, {"val_dice", m.val_dice},
                 {"val_iou", m.val_iou}, {"lr", m.lr}, {"seconds", m.seconds}});
  atomic_write(dir + "/metrics.json", [&](std::ostream& out) { out << j.dump(2) << "\n"; });
  if (!gnuplot_available()) return;
  PlotSpec spec;
  spec.title = "training curves";
  spec.xlabel = "epoch";
  spec.ylabel = "loss / Dice";
  Series tl{"train loss", {}, {}}, vl{"val loss", {}, {}}, vd{"val Dice", {}, {}};
  for (const auto& m : h) {
    for (Series* s : {&tl, &vl, &vd}) s->x.push_back(m.epoch);
    tl.y.push_back(m.train_loss), vl.y.push_back(m.val_loss), vd.y.push_back(m.val_dice);
  }
  spec.series = {tl, vl, vd};
  try {
    plot_png(spec, dir + "/curves.png");
  } catch (const Error& e) {
    std::cerr << "warning: could not plot curves: " << e.what() << "\n";
  }
}

nlohmann::json history_json(const std::vector<EpochMetrics>& h) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& m : h) j.push_back({m.epoch, m.train_loss, m.val_loss, m.val_dice, m.val_iou, m.lr, m.seconds});
  return j;
}

std::vector<EpochMetrics> history_from_json(const nlohmann::json& j) {
  std::vector<EpochMetrics> h;
  for (const auto& r : j) h.push_back({r[0], r[1], r[2], r[3], r[4], r[5], r[6]});
  return h;
}

void check_options(const TrainOptions& o) {
  require(!o.out_dir.empty(), "train: --out is required");
  require(o.input_mode == "resize" || o.input_mode == "crop", "train: input mode must be resize or crop");
  require(o.resize == "stretch" || o.resize == "letterbox", "train: --resize must be stretch or letterbox");
  require(o.resize == "stretch" || o.input_mode == "resize",
          "train: --resize letterbox applies to whole-image resizing (input mode resize), not to crops");
  require(o.input_size >= 32 && o.input_size % 32 == 0, "train: --input-size must be a positive multiple of 32, got " + std::to_string(o.input_size));
  require(o.batch_size >= 1, "train: --batch-size must be >= 1");
  require(o.epochs >= 1, "train: --epochs must be >= 1");
  require(o.lr > 0 && o.lr < 1, "train: --lr must be in (0, 1)");
  require(o.val_fraction > 0 && o.val_fraction < 1, "train: --val-fraction must be in (0, 1)");
  require(o.loss.pos_weight > 0, "train: pos_weight must be > 0");
  require(o.weight_decay >= 0, "train: --weight-decay must be >= 0");
  require(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "train: Adam's betas must be in [0, 1)");
  require(o.plateau_patience >= 0, "train: --plateau-patience must be >= 0");
  require(o.plateau_factor > 0 && o.plateau_factor < 1, "train: --plateau-factor must be in (0, 1)");
  require(o.min_lr >= 0, "train: --min-lr must be >= 0");
  require(o.early_stop_patience >= 1, "train: --early-stop-patience must be >= 1");
  require(o.loss.dice_weight >= 0 && o.loss.bce_weight >= 0 && o.loss.dice_weight + o.loss.bce_weight > 0,
          "train: --dice-weight and --bce-weight must be >= 0, not both 0");
  require(o.loss.eps > 0, "train: --eps must be > 0");
  for (double w : o.loss.class_weights)
    require(std::isfinite(w) && w >= 0, "train: class weights must be finite and >= 0, got " + std::to_string(w));
  check_training_strategies(o);  // --qat bits, distillation, progressive resizing, pruning
}

// The options a run's weights depend on: a resumed run must share them with the run it continues.
// The epoch budget and the stopping rules may change on resume; the memory layout, the precision
// (bf16 or float32) and the resolved pos_weight are restored from the checkpoint instead, so that
// a preset whose default changed (or another CPU kind) still resumes the run as it was started.
nlohmann::json options_fixed_for_resume(const TrainOptions& o) {
  nlohmann::json j = o.to_json();
  for (const char* free : {"epochs", "max_minutes", "early_stop_patience", "channels_last", "pos_weight", "bf16"}) j.erase(free);
  return j;
}

// The precision a checkpoint's run was started with: its own key, or (checkpoints written before
// it) "bf16" among its options, recorded there only when on.
bool checkpoint_bf16(const nlohmann::json& state) {
  if (state.contains("bf16")) return state.at("bf16").get<bool>();
  return state.contains("options") && state.at("options").value("bf16", false);
}

// Refuses to resume with options other than the checkpoint's (checkpoints written before the
// options were recorded are not checked): the result would match neither run.
void require_same_options(const nlohmann::json& state, const TrainOptions& o, const std::string& ckpt) {
  if (!state.contains("options")) return;
  nlohmann::json saved = state.at("options");
  saved.erase("bf16");  // restored from the checkpoint (checkpoint_bf16), not compared
  const nlohmann::json now = options_fixed_for_resume(o);
  auto text = [](const nlohmann::json& j, const std::string& key) { return j.contains(key) ? j.at(key).dump() : "(unset)"; };
  std::set<std::string> keys;
  for (const auto& item : saved.items()) keys.insert(item.key());
  for (const auto& item : now.items()) keys.insert(item.key());
  std::string diff;
  for (const auto& key : keys)
    if (text(saved, key) != text(now, key)) diff += (diff.empty() ? "" : ", ") + key + " " + text(saved, key) + " -> " + text(now, key);
  require(diff.empty(), "train --resume: " + ckpt + " was written with other options (" + diff +
                            "); resume with the run's own options (only --epochs, --max-minutes and the early-stopping "
                            "patience may change), or start a new run in another --out folder");
}

}  // namespace

Preprocessing preprocessing_for(const TrainOptions& o, const Dataset& data, const std::vector<size_t>& train) {
  Preprocessing p;
  std::vector<double> offsets;
  for (size_t i : train)
    if (data.samples[i].outline_offset_px > 0) offsets.push_back(data.samples[i].outline_offset_px);
  if (!offsets.empty()) {  // the annotation's line width is a convention of the data: one value
    std::nth_element(offsets.begin(), offsets.begin() + static_cast<std::ptrdiff_t>(offsets.size() / 2), offsets.end());
    p.hc_outline_offset_px = offsets[offsets.size() / 2];
  }
  p.channels = data.channels;
  p.intensity = o.intensity;
  p.max_value = data.max_value;
  p.intensity_range = data.intensity_range;
  p.input_height = p.input_width = o.input_size;
  p.mode = o.input_mode == "resize" ? "resize" : "pad";
  if (o.input_mode == "resize") p.resize = o.resize;
  return p;
}

namespace {

// The model's tensors every rank must hold equal: parameters and buffers (BatchNorm statistics).
std::vector<torch::Tensor> model_state_tensors(SegmentationModel& model, bool with_parameters) {
  std::vector<torch::Tensor> tensors;
  if (with_parameters)
    for (auto& p : model->parameters()) tensors.push_back(p);
  for (auto& b : model->buffers()) tensors.push_back(b);
  return tensors;
}

// Joins the gradients of `trainable` to the other ranks' and makes every rank start from rank
// 0's weights; reports (rank 0) what a step's all-reduce costs here.
void start_data_parallel(DataParallel& dp, SegmentationModel& model, const std::vector<torch::Tensor>& trainable,
                         const TrainOptions& o, const DistributedOptions& dist) {
  dp.broadcast_from_main(model_state_tensors(model, true));
  dp.average_gradients_of(trainable);
  if (dist.sync_batch_norm) dp.synchronise_batch_norm();
  int64_t bytes = 0;
  for (const auto& p : trainable) bytes += p.numel() * static_cast<int64_t>(p.element_size());
  const double seconds = dp.time_all_reduce(bytes, 5);
  if (dp.is_main())
    std::fprintf(stderr,
                 "data-parallel: %d ranks, batch %d per rank (%d in all)%s; gradients %.2f MB per step, all-reduce "
                 "%.2f ms (%.0f MB/s)\n",
                 dp.world_size(), o.batch_size, o.batch_size * dp.world_size(), dist.sync_batch_norm ? ", synced BatchNorm" : "",
                 bytes / 1e6, seconds * 1e3, bytes / 1e6 / std::max(seconds, 1e-9));
}

TrainResult run_training(const Dataset& data, const TrainOptions& opts, const DistributedOptions& dist, DataParallel* dp) {
  const bool main = !dp || dp->is_main();  // rank 0 alone writes the run folder
  TrainOptions o = opts;
  const auto start = Clock::now();
  cv::setNumThreads(1);  // OpenCV in the loader thread must not fight LibTorch for the cores
  const std::string ckpt = o.out_dir + "/checkpoint.safetensors";
  // Everything that can refuse the run (the split, the data, the model and its options) comes
  // before the first file is written.
  const Split split = grouped_split(data, o.val_fraction, o.seed);
  require(!split.train.empty() && !split.val.empty(), "train: the dataset needs at least 2 groups to split");
  if (o.pos_weight_auto) o.loss.pos_weight = auto_pos_weight(data, split.train);

  require(o.num_classes == 0 || o.num_classes == data.num_classes,
          "train: " + std::to_string(o.num_classes) + " classes were asked for but the " + data.kind + " dataset's masks have " +
              std::to_string(data.num_classes));
  require(o.loss.class_weights.empty() || static_cast<int>(o.loss.class_weights.size()) == data.num_classes,
          "train: " + std::to_string(o.loss.class_weights.size()) + " class weights given for " +
              std::to_string(data.num_classes) + " classes (one per class, background first)");
  require(o.loss.class_weights.empty() || data.num_classes > 2,
          "train: class weights apply to multi-class models; binary models weigh the foreground with --pos-weight");
  torch::manual_seed(o.seed);  // the initial weights are part of what a seed reproduces
  const int in_channels = static_cast<int>(data.channels.size());
  SegmentationModel model = o.initial_model ? o.initial_model : build_model(o, in_channels, data.num_classes);
  if (!o.initial_model && !o.init_from.empty()) init_from_model_file(model, o.init_from);
  require(model->config().in_channels == in_channels,
          "train: the model takes " + std::to_string(model->config().in_channels) + " input channels but the data has " +
              std::to_string(in_channels));
  require(model->config().num_classes == data.num_classes,
          "train: the model segments " + std::to_string(model->config().num_classes) + " classes but the data's masks have " +
              std::to_string(data.num_classes));
  TrainingStrategies strategies(o, data.channels);  // loads a distillation teacher
  if (main) {
    fs::create_directories(o.out_dir);
    atomic_write(o.out_dir + "/split.json", [&](std::ostream& out) { out << split.to_json(data).dump(2) << "\n"; });
  }
  const Preprocessing pre = preprocessing_for(o, data, split.train);
  // A resumed run keeps the layout it was started with, so that it reaches exactly the weights
  // of an uninterrupted run (checkpoints from before the layout was recorded: NCHW).
  if (o.resume && fs::exists(ckpt)) {
    const nlohmann::json state = checkpoint_trainer_state(ckpt);
    require_same_options(state, o, ckpt);  // before any weights are read into a model of other options
    o.channels_last = state.value("channels_last", false);
    o.bf16 = checkpoint_bf16(state);
  }
  // The fully resolved recipe (model options completed by the registry): `train --config` of
  // this file runs this run again.
  nlohmann::json config = train_config_json(o);
  if (!o.initial_model) config["model_options"] = model->config().options;
  if (main) atomic_write(o.out_dir + "/config.json", [&](std::ostream& out) { out << config.dump(2) << "\n"; });
  if (train_in_float64()) {
    if (main) std::cerr << "LEANSEG_TRAIN_FLOAT64=1: training in double precision\n";
    convert_weights(model, torch::kDouble);
  }
  if (o.channels_last) convert_to_channels_last(*model);  // before the optimizer: its state then takes the same layout
  std::vector<torch::Tensor> trainable;
  for (auto& p : model->parameters())
    if (p.requires_grad()) trainable.push_back(p);
  torch::optim::Adam opt(trainable, torch::optim::AdamOptions(o.lr).betas({o.beta1, o.beta2}).weight_decay(o.weight_decay));

  PlateauSchedule sched;
  sched.lr = o.lr;
  TrainResult result;
  int first_epoch = 1;
  double elapsed_before = 0;
  if (o.resume && fs::exists(ckpt)) {
    const auto state = load_checkpoint(ckpt, model, opt);
    sched.from_json(state.at("schedule"));
    result.history = history_from_json(state.at("history"));
    first_epoch = state.at("epoch").get<int>() + 1;
    elapsed_before = state.value("seconds", 0.0);
    o.loss.pos_weight = state.at("pos_weight");
    set_lr(opt, sched.lr);
    if (main) std::cerr << "resuming " << o.out_dir << " from epoch " << first_epoch << "\n";
  } else if (o.resume && main) {
    std::cerr << "warning: --resume: no checkpoint in " << o.out_dir << ", starting from scratch\n";
  }
  if (dp) {  // every rank read the checkpoint itself: they must have read the same one
    const int main_first = static_cast<int>(dp->broadcast_from_main(std::vector<double>{static_cast<double>(first_epoch)})[0]);
    require(main_first == first_epoch, "train --resume: rank " + std::to_string(dp->rank()) + " would start at epoch " +
                                           std::to_string(first_epoch) + " but rank 0 at epoch " + std::to_string(main_first) +
                                           ": every rank reads " + ckpt + ", so --out must be a folder all nodes share");
    start_data_parallel(*dp, model, trainable, o, dist);
  }
  const TrainingSet train_set = prepare_training_set(data, split.train, o);
  const TrainingSet val_set = prepare_training_set(data, split.val, o);
  const nlohmann::json provenance = {{"train_options", o.to_json()}, {"dataset", data.kind}, {"n_train", split.train.size()}, {"n_val", split.val.size()}};

  int epochs_this_process = 0;
  result.stop_reason = "reached --epochs";
  for (int epoch = first_epoch; epoch <= o.epochs; ++epoch) {
    const auto t0 = Clock::now();
    EpochMetrics m;
    m.epoch = epoch;
    m.lr = sched.lr;
    m.train_loss = train_epoch(model, opt, train_set, o, pre, epoch, strategies, dp);
    const double train_seconds = seconds_since(t0);
    // Rank 0's BatchNorm running statistics for all (what DDP's broadcast_buffers gives).
    if (dp) dp->broadcast_from_main(model_state_tensors(model, false));
    // QAT: validate what deployment runs, Q(master weights); the files keep the fp32 master
    // weights, so quantizing them later (`leanseg compress --quant`) gives exactly the validated
    // model (re-quantizing already quantized weights is not idempotent: the range can shrink).
    auto quantized = strategies.quantized(model);
    const ValScores v = validate_all(model, val_set, o, pre, dp);
    quantized.reset();
    m.val_loss = v.loss, m.val_dice = v.dice, m.val_iou = v.iou;
    m.seconds = seconds_since(t0);
    result.history.push_back(m);
    const bool improved = sched.observe(v.dice, epoch, o.plateau_patience, o.plateau_factor, o.min_lr);
    set_lr(opt, sched.lr);
    const double total_seconds = elapsed_before + seconds_since(start);
    if (main) {
      if (improved) save_model_file(o.out_dir + "/best.safetensors", model, pre, provenance);
      save_model_file(o.out_dir + "/last.safetensors", model, pre, provenance);
      save_checkpoint(ckpt, model, opt, {{"epoch", epoch}, {"schedule", sched.to_json()}, {"history", history_json(result.history)},
                                         {"pos_weight", o.loss.pos_weight}, {"seconds", total_seconds},
                                         {"channels_last", o.channels_last}, {"bf16", o.bf16},
                                         {"options", options_fixed_for_resume(o)}});
      write_metrics(o.out_dir, result.history);
    }
    if (o.progress && main)
      std::fprintf(stderr, "epoch %d: train loss %.4f  val loss %.4f  val Dice %.4f  IoU %.4f  lr %.2g  (%.0f s, %.1f train img/s)\n",
                   epoch, m.train_loss, v.loss, v.dice, v.iou, m.lr, m.seconds,
                   train_set.images.size() * std::max(1, o.crops_per_image) / std::max(train_seconds, 1e-9));
    if (sched.should_stop(o.early_stop_patience)) {
      result.stop_reason = "early stopping: no improvement for " + std::to_string(o.early_stop_patience) + " epochs";
      break;
    }
    bool over_budget = o.max_minutes > 0 && total_seconds / 60 > o.max_minutes;
    if (dp) over_budget = dp->sum({over_budget ? 1.0 : 0.0})[0] > 0;  // clocks differ: stop together
    if (over_budget) {
      result.stop_reason = "time budget of " + std::to_string(o.max_minutes) + " min reached";
      break;
    }
    if (o.stop_after_epochs > 0 && ++epochs_this_process >= o.stop_after_epochs) {
      result.stop_reason = "stopped after " + std::to_string(o.stop_after_epochs) + " epochs (--stop-after)";
      break;
    }
  }
  result.epochs_run = static_cast<int>(result.history.size());
  result.best_epoch = sched.best_epoch;
  result.best_val_dice = sched.best;
  result.seconds = elapsed_before + seconds_since(start);
  if (dp) dp->barrier();  // no rank leaves while another may still need it
  return result;
}

}  // namespace

TrainResult train_model(const Dataset& data, const TrainOptions& o) { return train_model(data, o, DistributedOptions{}); }

TrainResult train_model(const Dataset& data, const TrainOptions& o, const DistributedOptions& dist) {
  check_options(o);
  if (!dist.enabled()) return run_training(data, o, dist, nullptr);
  std::exception_ptr failure;
  {
    DataParallel dp(dist);
    try {
      return run_training(data, o, dist, &dp);
    } catch (...) {
      failure = dp.explain_failure(std::current_exception());
    }
  }  // the process group is shut down before the error leaves
  std::rethrow_exception(failure);
}


}  // namespace leanseg
