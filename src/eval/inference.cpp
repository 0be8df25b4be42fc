#include "leanseg/inference.h"

#include <opencv2/imgproc.hpp>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "leanseg/prediction.h"

namespace leanseg {

torch::Tensor image_to_tensor(const cv::Mat& image01, const Preprocessing& pre) {
  require(image01.depth() == CV_32F, "image_to_tensor: expected a float image");
  require(image01.channels() == static_cast<int>(pre.channels.size()),
          "image has " + std::to_string(image01.channels()) + " channels, the model expects " +
              std::to_string(pre.channels.size()));
  cv::Mat c = image01.isContinuous() ? image01 : image01.clone();
  auto t = torch::from_blob(c.data, {1, c.rows, c.cols, c.channels()}, torch::kFloat32).permute({0, 3, 1, 2});
  return ((t - pre.mean) / pre.std).contiguous();
}

torch::Tensor images_to_batch(const std::vector<cv::Mat>& images01, const Preprocessing& pre) {
  std::vector<torch::Tensor> parts;
  parts.reserve(images01.size());
  for (const auto& im : images01) parts.push_back(image_to_tensor(im, pre));
  return torch::cat(parts, 0);
}

torch::Tensor masks_to_batch(const std::vector<cv::Mat>& masks) {
  std::vector<torch::Tensor> parts;
  for (const auto& m : masks) {
    cv::Mat c = m.isContinuous() ? m : m.clone();
    parts.push_back(torch::from_blob(c.data, {1, 1, c.rows, c.cols}, torch::kUInt8).to(torch::kFloat32));
  }
  return torch::cat(parts, 0);
}

namespace {

// [K, H, W] probabilities → CV_32FC(K) (channels interleaved, as OpenCV stores them).
cv::Mat tensor_to_mat(const torch::Tensor& prob) {
  auto c = prob.permute({1, 2, 0}).contiguous().to(torch::kFloat32);
  return cv::Mat(static_cast<int>(c.size(0)), static_cast<int>(c.size(1)), CV_32FC(static_cast<int>(c.size(2))),
                 c.data_ptr<float>())
      .clone();
}

}  // namespace

torch::Tensor logits_to_probabilities(const torch::Tensor& logits) {
  return logits.size(1) == 1 ? torch::sigmoid(logits) : torch::softmax(logits, 1);
}

ProbabilityFn logits_probability_fn(std::function<torch::Tensor(const torch::Tensor&)> logits, Preprocessing pre) {
  return [logits = std::move(logits), pre](const cv::Mat& image01) {
    torch::NoGradGuard no_grad;
    return tensor_to_mat(logits_to_probabilities(logits(image_to_tensor(image01, pre)))[0]);
  };
}

ProbabilityFn libtorch_probability_fn(SegmentationModel model, Preprocessing pre) {
  return logits_probability_fn(
      [model](const torch::Tensor& x) mutable {
        model->eval();
        return model->forward(x);
      },
      std::move(pre));
}

cv::Mat predict_probability(SegmentationModel model, const Preprocessing& pre, const cv::Mat& image01) {
  return predict_probability_with(pre, model->size_divisor(), image01, libtorch_probability_fn(model, pre));
}

}  // namespace leanseg
