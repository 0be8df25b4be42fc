#include "leanseg/error.h"
#include "leanseg/train.h"

namespace leanseg {

torch::Tensor dice_bce_loss(const torch::Tensor& logits, const torch::Tensor& target, const LossOptions& o) {
  require(logits.sizes() == target.sizes(), "loss: logits and target shapes differ");
  auto prob = torch::sigmoid(logits);
  auto inter = (prob * target).sum();
  auto dice = 1 - (2 * inter + o.eps) / (prob.sum() + target.sum() + o.eps);
  auto bce = torch::nn::functional::binary_cross_entropy_with_logits(
      logits, target,
      torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().pos_weight(
          torch::full({1}, o.pos_weight, logits.options())));
  return o.dice_weight * dice + o.bce_weight * bce;
}

double auto_pos_weight(const Dataset& d, const std::vector<size_t>& indices) {
  double fg = 0, total = 0;
  for (size_t i : indices) {
    const auto& m = d.samples[i].mask;
    fg += cv::countNonZero(m);
    total += static_cast<double>(m.total());
  }
  require(fg > 0, "pos_weight auto: the training masks have no foreground");
  return (total - fg) / fg;
}

}  // namespace leanseg

namespace leanseg {

// Hinton et al. (2015) for a per-pixel binary task: the soft targets are the teacher's
// temperature-softened probabilities; T² keeps the gradient scale independent of T.
torch::Tensor distillation_loss(const torch::Tensor& student, const torch::Tensor& teacher, double temperature) {
  require(student.sizes() == teacher.sizes(), "distillation: student and teacher logits have different shapes");
  require(temperature > 0, "distillation: the temperature must be > 0");
  const auto soft_targets = torch::sigmoid(teacher.detach() / temperature);
  return temperature * temperature *
         torch::nn::functional::binary_cross_entropy_with_logits(student / temperature, soft_targets);
}

}  // namespace leanseg
