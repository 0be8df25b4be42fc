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

torch::Tensor dice_ce_loss(const torch::Tensor& logits, const torch::Tensor& target, const LossOptions& o) {
  const int64_t k = logits.size(1);
  require(logits.dim() == 4 && k >= 3 && target.dim() == 4 && target.size(1) == 1 && logits.size(0) == target.size(0) &&
              logits.size(2) == target.size(2) && logits.size(3) == target.size(3),
          "loss: multi-class logits must be [N, K>=3, H, W] and the target [N, 1, H, W]");
  require(o.class_weights.empty() || static_cast<int64_t>(o.class_weights.size()) == k,
          "loss: " + std::to_string(o.class_weights.size()) + " class weights given for " + std::to_string(k) + " classes");
  const auto labels = target.squeeze(1).to(torch::kLong);
  const auto prob = torch::softmax(logits, 1);
  const auto onehot = torch::one_hot(labels, k).permute({0, 3, 1, 2}).to(prob.dtype());
  const std::vector<int64_t> spatial = {0, 2, 3};
  const auto inter = (prob * onehot).sum(spatial), sizes = prob.sum(spatial) + onehot.sum(spatial);
  const auto dice_per_class = (2 * inter + o.eps) / (sizes + o.eps);
  const auto dice = 1 - dice_per_class.slice(0, 1).mean();  // foreground classes only
  auto ce_options = torch::nn::functional::CrossEntropyFuncOptions();
  if (!o.class_weights.empty())
    ce_options.weight(torch::tensor(o.class_weights, torch::kDouble).to(logits.scalar_type()));
  const auto ce = torch::nn::functional::cross_entropy(logits, labels, ce_options);
  return o.dice_weight * dice + o.bce_weight * ce;
}

torch::Tensor segmentation_loss(const torch::Tensor& logits, const torch::Tensor& target, const LossOptions& o) {
  // float32 whatever the forward ran in (bf16 under Bf16Autocast): sums over a whole batch of
  // pixels need float32's mantissa.
  const auto l = logits.to(torch::kFloat32);
  return l.size(1) == 1 ? dice_bce_loss(l, target, o) : dice_ce_loss(l, target, o);
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
torch::Tensor distillation_loss(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits, double temperature) {
  require(student_logits.sizes() == teacher_logits.sizes(), "distillation: student and teacher logits have different shapes");
  // float32 like segmentation_loss, whatever the forwards ran in (bf16 under Bf16Autocast)
  const auto student = student_logits.to(torch::kFloat32), teacher = teacher_logits.to(torch::kFloat32);
  require(temperature > 0, "distillation: the temperature must be > 0");
  if (student.size(1) > 1) {
    const auto soft_targets = torch::softmax(teacher.detach() / temperature, 1);
    const auto log_student = torch::log_softmax(student / temperature, 1);
    return -temperature * temperature * (soft_targets * log_student).sum(1).mean();
  }
  const auto soft_targets = torch::sigmoid(teacher.detach() / temperature);
  return temperature * temperature *
         torch::nn::functional::binary_cross_entropy_with_logits(student / temperature, soft_targets);
}

}  // namespace leanseg
