#include "strategies.h"

#include <cmath>

#include "compress/quantize.h"
#include "leanseg/error.h"
#include "leanseg/model_file.h"

namespace leanseg {
namespace {
namespace F = torch::nn::functional;

int ramp(int configured, int epochs) { return configured > 0 ? configured : std::max(1, epochs / 2); }

}  // namespace

void check_training_strategies(const TrainOptions& o) {
  if (o.qat_bits != 0) {
    try {
      check_bits(o.qat_bits);
    } catch (const Error& e) {
      throw Error(std::string("quantization-aware training: ") + e.what());
    }
  }
  require(o.distill_alpha >= 0 && o.distill_alpha <= 1, "distillation: alpha must be in [0, 1]");
  require(o.distill_temperature > 0, "distillation: the temperature must be > 0");
  if (o.progressive_start != 0)
    require(o.progressive_start >= 32 && o.progressive_start % 32 == 0 && o.progressive_start < o.input_size,
            "progressive resizing: the start size must be a multiple of 32 below the input size " +
                std::to_string(o.input_size) + ", got " + std::to_string(o.progressive_start));
  require(o.prune_target >= 0 && o.prune_target < 1, "pruning-aware training: the target sparsity must be in [0, 1)");
}


double gradual_sparsity(double target, int epoch, int ramp_epochs) {
  const double t = std::min(1.0, static_cast<double>(epoch) / std::max(1, ramp_epochs));
  return target * (1 - std::pow(1 - t, 3));
}

int progressive_size(const TrainOptions& o, int epoch) {
  if (o.progressive_start == 0) return o.input_size;
  const int n = ramp(o.progressive_epochs, o.epochs);
  const double t = n <= 1 ? 1.0 : std::min(1.0, static_cast<double>(epoch - 1) / (n - 1));
  const double size = o.progressive_start + t * (o.input_size - o.progressive_start);
  return static_cast<int>(std::lround(size / 32)) * 32;
}

FakeQuantizedWeights::FakeQuantizedWeights(torch::nn::Module& m, int bits, bool per_channel) {
  torch::NoGradGuard no_grad;
  for (auto& [name, w] : compressible_weights(m)) {
    saved_.emplace_back(w, w.detach().clone());
    w.copy_(affine_dequantize(affine_quantize(w, bits, per_channel)));
  }
}

FakeQuantizedWeights::~FakeQuantizedWeights() {
  torch::NoGradGuard no_grad;
  for (auto& [w, fp32] : saved_) w.copy_(fp32);
}

TrainingStrategies::TrainingStrategies(const TrainOptions& o, const std::vector<std::string>& data_channels) : o_(o) {
  check_training_strategies(o);
  if (!o.teacher.empty()) {
    LoadedModel t = load_model(o.teacher);
    require(t.preprocessing.channels == data_channels,
            "distillation: teacher '" + o.teacher + "' takes channels " + nlohmann::json(t.preprocessing.channels).dump() +
                " but the data has " + nlohmann::json(data_channels).dump());
    teacher_ = t.model;
    teacher_->eval();
    for (auto& p : teacher_->parameters()) p.set_requires_grad(false);
  }
}

void TrainingStrategies::begin_epoch(SegmentationModel& model, int epoch) {
  if (o_.prune_target <= 0) return;
  sparsity_ = gradual_sparsity(o_.prune_target, epoch, ramp(o_.prune_epochs, o_.epochs));
  PruneOptions p;
  p.sparsity = sparsity_;
  masks_ = magnitude_prune(*model, p).masks;
}

torch::Tensor TrainingStrategies::loss(SegmentationModel& model, const torch::Tensor& images, const torch::Tensor& masks,
                                       const LossOptions& task_options) {
  const auto logits = model->forward(images);
  auto task = segmentation_loss(logits, masks, task_options);
  if (!teacher_) return task;
  torch::Tensor teacher_logits;
  {
    torch::NoGradGuard no_grad;
    teacher_logits = teacher_->forward(images);
  }
  return (1 - o_.distill_alpha) * task + o_.distill_alpha * distillation_loss(logits, teacher_logits, o_.distill_temperature);
}

void TrainingStrategies::after_step(SegmentationModel& model) const {
  if (!masks_.empty()) apply_masks(*model, masks_);
}

std::unique_ptr<FakeQuantizedWeights> TrainingStrategies::quantized(SegmentationModel& model) const {
  if (o_.qat_bits == 0) return nullptr;
  return std::make_unique<FakeQuantizedWeights>(*model, o_.qat_bits, o_.qat_per_channel);
}

void TrainingStrategies::resize_batch(torch::Tensor& images, torch::Tensor& masks, int epoch) const {
  const int size = progressive_size(o_, epoch);
  if (size == images.size(2) && size == images.size(3)) return;
  const std::vector<int64_t> hw = {size, size};
  images = F::interpolate(images, F::InterpolateFuncOptions().size(hw).mode(torch::kBilinear).align_corners(false));
  masks = F::interpolate(masks, F::InterpolateFuncOptions().size(hw).mode(torch::kNearest));
}

}  // namespace leanseg
