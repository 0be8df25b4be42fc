#include "calibration.h"

#include <opencv2/core.hpp>
#include <random>

#include "cli_common.h"
#include "leanseg/data.h"
#include "leanseg/error.h"
#include "leanseg/graph_export.h"

namespace leanseg::cli {
namespace {

runtime::PlainTensor calibration_tensor(cv::Mat image, const Preprocessing& pre, int64_t h, int64_t w) {
  if (pre.intensity == "minmax") cv::normalize(image, image, 0, 1, cv::NORM_MINMAX);
  if (pre.mode == "resize" && pre.resize == "letterbox") {
    image = letterbox_image(image, static_cast<int>(h), static_cast<int>(w));
  } else if (pre.mode == "resize") {
    image = resize_image(image, static_cast<int>(h), static_cast<int>(w));
  } else {
    cv::Mat canvas = cv::Mat::zeros(static_cast<int>(h), static_cast<int>(w), image.type());
    const int ch = std::min<int>(h, image.rows), cw = std::min<int>(w, image.cols);
    image(cv::Rect((image.cols - cw) / 2, (image.rows - ch) / 2, cw, ch)).copyTo(canvas(cv::Rect(0, 0, cw, ch)));
    image = canvas;
  }
  const int c = image.channels();
  std::vector<float> chw(static_cast<size_t>(c * h * w));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k)
        chw[(k * h + y) * w + x] = static_cast<float>((image.ptr<float>(y)[x * c + k] - pre.mean) / pre.std);
  return runtime::PlainTensor::floats({1, c, h, w}, std::move(chw));
}

}  // namespace

std::vector<runtime::PlainTensor> calibration_inputs(const CalibrationSource& source, const Preprocessing& pre,
                                                     const std::vector<int64_t>& shape) {
  require(shape.size() == 4 && shape[0] == 1, "calibration: expected an input shape [1, C, H, W]");
  require(source.images >= 1, "--calibration-images must be at least 1");
  std::vector<runtime::PlainTensor> inputs;
  if (source.data == "random") {
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    for (int i = 0; i < source.images; ++i) {
      std::vector<float> v(static_cast<size_t>(shape[1] * shape[2] * shape[3]));
      for (auto& x : v) x = normal(rng);
      inputs.push_back(runtime::PlainTensor::floats(shape, std::move(v)));
    }
    return inputs;
  }
  const bool bbbc = detect_dataset_kind(source.data) == "bbbc010";
  const Dataset d = read_dataset(source.data, "auto", bbbc ? pre.channels : std::vector<std::string>{});
  require(!d.samples.empty(), "calibration data " + source.data + ": the dataset has no images");
  std::vector<size_t> pool;  // candidates: the run's training images, or every image
  if (!source.split.empty()) pool = indices_from_split(d, source.split, "train");
  else
    for (size_t i = 0; i < d.samples.size(); ++i) pool.push_back(i);
  const size_t n = std::min<size_t>(pool.size(), static_cast<size_t>(source.images));
  for (size_t i = 0; i < n; ++i) {  // spread over the pool, deterministic
    const Sample& s = d.samples[pool[i * pool.size() / n]];
    require(s.image.channels() == shape[1], "calibration: " + s.image_path + " has " +
                                                std::to_string(s.image.channels()) + " channels, the model takes " +
                                                std::to_string(shape[1]));
    inputs.push_back(calibration_tensor(s.image, pre, shape[2], shape[3]));
  }
  return inputs;
}

LibTorchInt8Model libtorch_int8_model(const LoadedModel& m, const CalibrationSource& source, const std::string& engine) {
  GraphInputShape shape;
  shape.height = m.preprocessing.input_height > 0 ? m.preprocessing.input_height : 256;
  shape.width = m.preprocessing.input_width > 0 ? m.preprocessing.input_width : 256;
  shape.dynamic_size = true;
  const std::vector<int64_t> input = {1, m.model->config().in_channels, shape.height, shape.width};
  std::vector<at::Tensor> calibration;
  for (auto& t : calibration_inputs(source, m.preprocessing, input))
    calibration.push_back(torch::from_blob(t.f32.data(), input, torch::kFloat).clone());
  return LibTorchInt8Model(model_graph(*m.model, shape), calibration, engine);
}

}  // namespace leanseg::cli
