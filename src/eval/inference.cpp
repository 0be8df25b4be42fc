#include "leanseg/inference.h"

#include <opencv2/imgproc.hpp>

#include "leanseg/data.h"
#include "leanseg/error.h"

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

cv::Mat tensor_to_mat(const torch::Tensor& prob2d) {
  auto c = prob2d.contiguous().to(torch::kFloat32);
  return cv::Mat(static_cast<int>(c.size(0)), static_cast<int>(c.size(1)), CV_32FC1, c.data_ptr<float>()).clone();
}

cv::Mat run_whole(SegmentationModel& model, const Preprocessing& pre, const cv::Mat& image01) {
  return tensor_to_mat(torch::sigmoid(model->forward(image_to_tensor(image01, pre)))[0][0]);
}

// Overlapping tiles of the model input size with a linear-ramp blend weight, so seams vanish.
cv::Mat run_tiled(SegmentationModel& model, const Preprocessing& pre, const cv::Mat& padded, int divisor) {
  const int th = std::min(pre.input_height, padded.rows), tw = std::min(pre.input_width, padded.cols);
  const int sh = std::max(divisor, th - th / 4), sw = std::max(divisor, tw - tw / 4);
  cv::Mat acc = cv::Mat::zeros(padded.size(), CV_32FC1), wsum = cv::Mat::zeros(padded.size(), CV_32FC1);
  cv::Mat weight(th, tw, CV_32FC1);
  for (int y = 0; y < th; ++y)
    for (int x = 0; x < tw; ++x) {
      const float wy = std::min(y + 1, th - y) / static_cast<float>(th / 2 + 1);
      const float wx = std::min(x + 1, tw - x) / static_cast<float>(tw / 2 + 1);
      weight.at<float>(y, x) = std::max(1e-3f, std::min(wy, 1.f) * std::min(wx, 1.f));
    }
  auto starts = [](int total, int tile, int step) {
    std::vector<int> s;
    for (int p = 0;; p += step) {
      if (p + tile >= total) {
        s.push_back(std::max(0, total - tile));
        break;
      }
      s.push_back(p);
    }
    return s;
  };
  for (int y : starts(padded.rows, th, sh))
    for (int x : starts(padded.cols, tw, sw)) {
      const cv::Rect r(x, y, tw, th);
      cv::Mat p = run_whole(model, pre, padded(r).clone());
      acc(r) += p.mul(weight);
      wsum(r) += weight;
    }
  return acc / wsum;
}

}  // namespace

cv::Mat predict_probability(SegmentationModel model, const Preprocessing& pre, const cv::Mat& image01) {
  torch::NoGradGuard no_grad;
  model->eval();
  const int d = model->size_divisor();
  if (pre.mode == "resize") {
    cv::Mat small = resize_image(image01, pre.input_height, pre.input_width);
    cv::Mat prob = run_whole(model, pre, small);
    cv::Mat full;
    cv::resize(prob, full, image01.size(), 0, 0, cv::INTER_LINEAR);
    return full;
  }
  cv::Mat padded = pad_to_multiple(image01, d, /*reflect=*/true);
  cv::Mat prob = pre.mode == "pad" ? run_whole(model, pre, padded) : run_tiled(model, pre, padded, d);
  return prob(cv::Rect(0, 0, image01.cols, image01.rows)).clone();
}

cv::Mat threshold_mask(const cv::Mat& prob, double threshold) {
  cv::Mat m;
  cv::threshold(prob, m, threshold, 1.0, cv::THRESH_BINARY);
  m.convertTo(m, CV_8UC1);
  return m;
}

}  // namespace leanseg
