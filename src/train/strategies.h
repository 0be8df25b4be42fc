// Training strategies (T4): quantization-aware training, knowledge distillation, progressive
// resizing and pruning-aware training with a gradual sparsity schedule. The trainer calls these
// at fixed points of its loop, so a resumed run repeats exactly what an uninterrupted one does.
#pragma once
#include <memory>

#include "leanseg/compress.h"
#include "leanseg/train.h"

namespace leanseg {

// Throws Error for strategy options out of range (QAT bits other than 8, 4, 2, distillation
// alpha or temperature, progressive start size, pruning target). The trainer calls it before
// writing anything; TrainingStrategies' constructor too.
void check_training_strategies(const TrainOptions& o);

// Sparsity at the end of `epoch` (1-based) ramping to `target` over `ramp_epochs`:
// s = target · (1 − (1 − min(1, epoch / ramp_epochs))³).
double gradual_sparsity(double target, int epoch, int ramp_epochs);
// Training input size of `epoch` under progressive resizing (input_size when it is off).
int progressive_size(const TrainOptions& o, int epoch);

// While alive, every compressible weight (Conv2d, ConvTranspose2d, Linear; frozen ones too: the
// deployed model quantizes them all) holds its affine fake-quantized value; the destructor
// restores the fp32 values bit-exactly. Gradients computed inside therefore reach the fp32
// weights unchanged: the straight-through estimator.
class FakeQuantizedWeights {
 public:
  FakeQuantizedWeights(torch::nn::Module& m, int bits, bool per_channel);
  ~FakeQuantizedWeights();
  FakeQuantizedWeights(const FakeQuantizedWeights&) = delete;
  FakeQuantizedWeights& operator=(const FakeQuantizedWeights&) = delete;

 private:
  std::vector<std::pair<torch::Tensor, torch::Tensor>> saved_;  // (weight, fp32 copy)
};

// What the trainer needs from the strategies, resolved once per run.
class TrainingStrategies {
 public:
  explicit TrainingStrategies(const TrainOptions& o, const std::vector<std::string>& data_channels);
  // Epoch start: recomputes the pruning masks of the gradual schedule.
  void begin_epoch(SegmentationModel& model, int epoch);
  // The loss of one batch (the task loss as `task` says, plus distillation). The task loss's
  // options come from the caller: a resumed run restores its pos_weight after this object is made.
  torch::Tensor loss(SegmentationModel& model, const torch::Tensor& images, const torch::Tensor& masks,
                     const LossOptions& task);
  // After every optimizer step: re-applies the masks.
  void after_step(SegmentationModel& model) const;
  // A guard that fake-quantizes the weights for QAT (nullptr when QAT is off).
  std::unique_ptr<FakeQuantizedWeights> quantized(SegmentationModel& model) const;
  // Resizes a training batch for progressive resizing (unchanged at full size).
  void resize_batch(torch::Tensor& images, torch::Tensor& masks, int epoch) const;
  double current_sparsity() const { return sparsity_; }

 private:
  TrainOptions o_;
  SegmentationModel teacher_{nullptr};
  std::vector<WeightMask> masks_;
  double sparsity_ = 0;
};

}  // namespace leanseg
