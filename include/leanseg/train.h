// Training (T1–T3): the seed's recipe with crash-safe checkpoints and exact resume.
#pragma once
#include <functional>
#include <string>

#include "leanseg/data.h"
#include "leanseg/model.h"
#include "leanseg/preprocessing.h"

namespace leanseg {

// DiceBCE = dice_weight · (1 − (2|X∩Y| + eps) / (|X| + |Y| + eps)) + bce_weight · BCEWithLogits
// with pos_weight, over the whole batch. X = sigmoid(logits), Y = target in {0, 1}.
struct LossOptions {
  double dice_weight = 0.8, bce_weight = 0.2, pos_weight = 200, eps = 1e-6;
  // Multi-class models: cross-entropy weight of each class 0..K-1 (empty: all 1); pos_weight
  // applies to binary models only.
  std::vector<double> class_weights;
};
torch::Tensor dice_bce_loss(const torch::Tensor& logits, const torch::Tensor& target, const LossOptions& o);
// K >= 3 classes: logits [N, K, H, W], target [N, 1, H, W] holding class indices (as floats).
// dice_weight · (1 − mean over the foreground classes c = 1..K-1 of
// (2|P_c ∩ Y_c| + eps) / (|P_c| + |Y_c| + eps)) + bce_weight · CE(logits, target; class_weights),
// P = softmax(logits), Y_c = [target == c], sums over the whole batch.
torch::Tensor dice_ce_loss(const torch::Tensor& logits, const torch::Tensor& target, const LossOptions& o);
// dice_bce_loss for one logit channel, dice_ce_loss for several.
torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& target, const LossOptions& o);
// Soft-target distillation loss: on binary logits T² · mean BCE(σ(s/T), σ(t/T)); on K-channel
// logits T² · mean over pixels of the cross-entropy −Σ_c softmax(t/T)_c · log softmax(s/T)_c.
// Minimal (its gradient is zero) where s = t.
torch::Tensor distillation_loss(const torch::Tensor& student, const torch::Tensor& teacher, double temperature);
// Background/foreground pixel ratio of the masks (pos_weight "auto").
double auto_pos_weight(const Dataset& d, const std::vector<size_t>& indices);

// True on CPUs with AVX-512, where channels-last training steps were measured at least as fast
// as NCHW (M1 medians 0.995x vs 1.08x PyTorch's step, six rounds on Zen 4/5); false on AVX2-only
// CPUs, where LibTorch 1.13's channels-last path re-lays out conv inputs and gradients every
// step (M1 on Zen 1: 1.33x NCHW's CPU time per step, README "Training speed against PyTorch").
bool channels_last_trains_faster_on_this_cpu();

// bf16 mixed precision for a training step's forward pass (and, through autograd, its backward):
// inside the scope LibTorch's CPU autocast runs convolutions, transposed convolutions, matmuls
// and linear layers in bfloat16 (oneDNN's AVX512-BF16 kernels) while the weights, their
// gradients and the optimizer's state stay float32 (master weights); losses are computed in
// float32 (segmentation_loss casts). No loss scaling: bf16 has float32's exponent range.
// Nests; restores the caller's autocast state on exit. Off: does nothing.
class Bf16Autocast {
 public:
  explicit Bf16Autocast(bool enabled);
  ~Bf16Autocast();
  Bf16Autocast(const Bf16Autocast&) = delete;
  Bf16Autocast& operator=(const Bf16Autocast&) = delete;

 private:
  bool enabled_, was_enabled_ = false;
  int was_dtype_ = 0;
};
// True on CPUs with AVX512-BF16, where oneDNN's bf16 convolutions run at twice fp32's rate.
bool bf16_trains_fast_on_this_cpu();

struct TrainOptions {
  // model
  std::string model = "mobilenet-aspp-se-unet";
  // Classes of the model (background included): 0 takes the dataset's (Dataset::num_classes);
  // otherwise it must equal the dataset's.
  int num_classes = 0;
  nlohmann::json model_options = nlohmann::json::object();
  std::string encoder_weights;  // ImageNet MobileNetV2 safetensors (M1/M4)
  // Start from a trained model file's weights (`--init-from RUN/best.safetensors`), e.g. to
  // fine-tune it with its encoder unfrozen at a low rate: the model is built from `model` and
  // `model_options`, then every parameter and buffer is copied from the file by name and shape.
  std::string init_from;
  // input: "resize" (whole image → input_size) or "crop" (random native-resolution crops of
  // input_size for training; validation/inference on the whole padded image)
  std::string input_mode = "resize";
  // input_mode "resize": "stretch" or "letterbox" (keeps the aspect ratio; preprocessing.h)
  std::string resize = "stretch";
  int input_size = 256;
  double crop_foreground_p = 0.7;
  int crops_per_image = 1;
  std::string intensity = "max";  // or "minmax" (per image)
  // optimisation (seed §8)
  int batch_size = 16, epochs = 100;
  double lr = 3e-4, weight_decay = 1e-4, beta1 = 0.9, beta2 = 0.999;
  int plateau_patience = 10;
  double plateau_factor = 0.5, min_lr = 1e-6;
  int early_stop_patience = 15;
  LossOptions loss;
  bool pos_weight_auto = false;
  bool augment = true;
  AugmentOptions augment_options;
  // data and run
  double val_fraction = 0.2;
  uint64_t seed = 42;
  int loader_threads = 1;
  // Conv weights and training batches in channels-last (NHWC) memory, or NCHW: the same numbers
  // up to floating-point summation order. The default is the layout measured faster on this kind
  // of CPU (channels_last_trains_faster_on_this_cpu). A resumed run keeps the layout recorded in
  // its checkpoint.
  bool channels_last = channels_last_trains_faster_on_this_cpu();
  // bf16 mixed precision for the training forward and backward (Bf16Autocast); validation and
  // the saved model stay float32.
  bool bf16 = false;
  double max_minutes = 0;  // stop (cleanly, after an epoch) when exceeded; 0 = no limit
  std::string out_dir;
  bool resume = false;
  bool progress = true;
  // Abort (as if killed) after this many epochs of this process; for resume tests.
  int stop_after_epochs = 0;
  // Fine-tuning (C6): train this model (in place) instead of building `model` from scratch;
  // model, model_options and encoder_weights are then ignored.
  SegmentationModel initial_model{nullptr};
  // Called after every optimizer step, e.g. to re-apply pruning masks so that pruned weights
  // stay exactly zero.
  std::function<void(SegmentationModel&)> after_step;

  // Training strategies (T4, src/train/strategies.cpp); all off by default.
  // Quantization-aware training: every forward (training and validation) sees the conv/linear
  // weights affine fake-quantized to qat_bits (8, 4, 2; 0 = off); the gradient passes straight
  // through to the fp32 weights, which the optimizer updates.
  int qat_bits = 0;
  bool qat_per_channel = false;
  // Knowledge distillation: teacher model file. Loss = (1 − α)·DiceBCE + α·T²·BCE(σ(s/T), σ(t/T))
  // on the logits s (student) and t (teacher).
  std::string teacher;
  double distill_alpha = 0.5, distill_temperature = 2.0;
  // Progressive resizing: training inputs grow linearly from progressive_start to input_size
  // (multiples of 32) over the first progressive_epochs epochs (0 = half of `epochs`); 0 = off.
  int progressive_start = 0, progressive_epochs = 0;
  // Pruning-aware training: global magnitude pruning whose sparsity ramps up to prune_target over
  // prune_epochs epochs (0 = half of `epochs`) with the cubic schedule of Zhu & Gupta (2017),
  // masks recomputed at the start of each epoch and enforced after every step.
  double prune_target = 0;
  int prune_epochs = 0;

  // Where the data came from ({"dir", "dataset", "channels"}; null for data given in memory):
  // recorded in the run's config.json so that `leanseg train --config` finds it again.
  nlohmann::json data_source;

  nlohmann::json to_json() const;
};

struct EpochMetrics {
  int epoch = 0;
  // val_dice, val_iou: multi-class models: the mean over the foreground classes.
  double train_loss = 0, val_loss = 0, val_dice = 0, val_iou = 0, lr = 0, seconds = 0;
};

struct TrainResult {
  int epochs_run = 0, best_epoch = 0;
  double best_val_dice = 0, seconds = 0;
  std::string stop_reason;
  std::vector<EpochMetrics> history;
};

// Trains on `data` (split by group, saved to out_dir/split.json). Writes out_dir/best.safetensors,
// last.safetensors, checkpoint.safetensors, metrics.csv, metrics.json, curves.png.
// With resume=true it continues from checkpoint.safetensors to exactly the weights an
// uninterrupted run reaches. A non-finite loss stops with Error; the last good checkpoint stays.
TrainResult train_model(const Dataset& data, const TrainOptions& o);

// Run configuration files (`leanseg train --config FILE`, src/train/train_config.cpp).
// A JSON (.json) or YAML (.yaml, .yml) file read as a JSON object; errors name the file (and the
// line for syntax errors).
nlohmann::json read_config_file(const std::string& path);
// Every recipe setting of `o` explicitly (what `train` writes to RUN/config.json): applied with
// apply_train_config on any preset, it gives back `o`'s recipe.
nlohmann::json train_config_json(const TrainOptions& o);
// Sets the settings `config` names on `o` (the others keep their values). Unknown keys, wrong
// types and out-of-range values are errors naming `file` and the key. Relative paths (data.dir,
// encoder_weights, distillation.teacher) are taken relative to the file's folder. The key
// "preset" is accepted and left to the caller (the recipe the other keys apply to).
void apply_train_config(const nlohmann::json& config, TrainOptions& o, const std::string& file);

// Named recipes: "hc18", "bbbc010" (the seeds': 256², batch 16, 100 epochs) and "hc18-cpu",
// "bbbc010-cpu" (documented CPU protocols of about an hour on 2 cores), "demo" (minutes),
// "folder" (plain image/mask folders of any kind: a U-Net trained from scratch, no ImageNet file).
TrainOptions preset(const std::string& name);
std::vector<std::string> preset_names();

// The preprocessing a model trained with `o` on data.samples[train] expects at inference (and
// where its head circumference is measured: the training images' median outline offset).
Preprocessing preprocessing_for(const TrainOptions& o, const Dataset& data, const std::vector<size_t>& train);

}  // namespace leanseg
