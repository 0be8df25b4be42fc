// Running a model on whole images of any size, reproducing the preprocessing stored with it:
// "resize" (whole image to the model size and back), "pad" (native resolution padded to the
// size divisor) or "tile" (overlapping tiles of the model size, blended).
#pragma once
#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "leanseg/model.h"
#include "leanseg/prediction.h"  // threshold_mask, predict_probability_with
#include "leanseg/preprocessing.h"

namespace leanseg {

// [H, W, C] float image in [0, 1] → normalised [1, C, H, W] tensor ((x − mean) / std).
torch::Tensor image_to_tensor(const cv::Mat& image01, const Preprocessing& pre);
// A batch of equally sized images → [N, C, H, W].
torch::Tensor images_to_batch(const std::vector<cv::Mat>& images01, const Preprocessing& pre);
// CV_8UC1 masks (0/1, or class indices) → [N, 1, H, W] float.
torch::Tensor masks_to_batch(const std::vector<cv::Mat>& masks);

// Sigmoid of [N, 1, H, W] logits, softmax over the channels of [N, K, H, W] ones.
torch::Tensor logits_to_probabilities(const torch::Tensor& logits);
// A logits function ([1, C, H, W] normalised → [1, K, H, W]) as prediction.h's network (no
// gradients, logits_to_probabilities).
ProbabilityFn logits_probability_fn(std::function<torch::Tensor(const torch::Tensor&)> logits, Preprocessing pre);
// The LibTorch model as prediction.h's network (eval mode, no gradients, sigmoid of the logits).
ProbabilityFn libtorch_probability_fn(SegmentationModel model, Preprocessing pre);

// Probabilities (CV_32FC1 foreground, or CV_32FC(K) classes) at the image's original size. The model is used in eval
// mode under NoGradGuard.
cv::Mat predict_probability(SegmentationModel model, const Preprocessing& pre, const cv::Mat& image01);

}  // namespace leanseg
