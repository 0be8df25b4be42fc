// Resizing, padding and cropping shared by training and inference.
#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "random.h"

namespace leanseg {
namespace {

void check_target(const cv::Mat& m, int height, int width, const char* what) {
  require(!m.empty(), std::string(what) + ": empty input");
  require(height > 0 && width > 0, std::string(what) + ": target size must be positive, got " +
                                       std::to_string(width) + "x" + std::to_string(height));
}

// Picks the k-th foreground pixel (row-major) for a uniformly random k.
cv::Point random_foreground_pixel(const cv::Mat& mask, int foreground, std::mt19937_64& rng) {
  int k = static_cast<int>(data_detail::uniform_index(rng, static_cast<uint64_t>(foreground)));
  for (int y = 0; y < mask.rows; ++y) {
    const uchar* row = mask.ptr<uchar>(y);
    for (int x = 0; x < mask.cols; ++x)
      if (row[x] && k-- == 0) return {x, y};
  }
  return {0, 0};  // unreachable when `foreground` is the true count
}

int clamp_start(int start, int full, int crop) { return std::max(0, std::min(start, full - crop)); }

}  // namespace

cv::Mat resize_image(const cv::Mat& image, int height, int width) {
  check_target(image, height, width, "resize_image");
  if (image.rows == height && image.cols == width) return image.clone();
  // Area averaging avoids aliasing when shrinking; when enlarging it would act like nearest.
  const bool shrinking = height <= image.rows && width <= image.cols;
  cv::Mat out;
  cv::resize(image, out, cv::Size(width, height), 0, 0, shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

Letterbox letterbox_geometry(int rows, int cols, int height, int width) {
  require(rows > 0 && cols > 0 && height > 0 && width > 0, "letterbox: sizes must be positive, got " +
                                                               std::to_string(cols) + "x" + std::to_string(rows) + " to " +
                                                               std::to_string(width) + "x" + std::to_string(height));
  const double scale = std::min(static_cast<double>(height) / rows, static_cast<double>(width) / cols);
  const int h = std::clamp(static_cast<int>(std::lround(rows * scale)), 1, height);
  const int w = std::clamp(static_cast<int>(std::lround(cols * scale)), 1, width);
  return {cv::Rect((width - w) / 2, (height - h) / 2, w, h), height, width};
}

namespace {
cv::Mat place_on_canvas(const cv::Mat& scaled, const Letterbox& box) {
  cv::Mat canvas = cv::Mat::zeros(box.height, box.width, scaled.type());
  scaled.copyTo(canvas(box.content));
  return canvas;
}
}  // namespace

cv::Mat letterbox_image(const cv::Mat& image, int height, int width) {
  check_target(image, height, width, "letterbox_image");
  const Letterbox box = letterbox_geometry(image.rows, image.cols, height, width);
  return place_on_canvas(resize_image(image, box.content.height, box.content.width), box);
}

cv::Mat letterbox_mask(const cv::Mat& mask, int height, int width) {
  check_target(mask, height, width, "letterbox_mask");
  const Letterbox box = letterbox_geometry(mask.rows, mask.cols, height, width);
  return place_on_canvas(resize_mask(mask, box.content.height, box.content.width), box);
}

cv::Mat unletterbox(const cv::Mat& canvas_output, cv::Size original) {
  const Letterbox box = letterbox_geometry(original.height, original.width, canvas_output.rows, canvas_output.cols);
  cv::Mat out;
  cv::resize(canvas_output(box.content), out, original, 0, 0, cv::INTER_LINEAR);
  return out;
}

cv::Mat resize_mask(const cv::Mat& mask, int height, int width) {
  check_target(mask, height, width, "resize_mask");
  if (mask.rows == height && mask.cols == width) return mask.clone();
  cv::Mat out;
  // NEAREST_EXACT samples at pixel centres, like the bilinear image resize, so the two stay aligned.
  cv::resize(mask, out, cv::Size(width, height), 0, 0, cv::INTER_NEAREST_EXACT);
  return out;
}

cv::Mat pad_to_multiple(const cv::Mat& m, int divisor, bool reflect) {
  require(divisor >= 1, "pad_to_multiple: divisor must be at least 1, got " + std::to_string(divisor));
  require(!m.empty(), "pad_to_multiple: empty input");
  const int bottom = (divisor - m.rows % divisor) % divisor;
  const int right = (divisor - m.cols % divisor) % divisor;
  cv::Mat out;
  // Reflection gives a network image-like context at the edge instead of a hard black band.
  cv::copyMakeBorder(m, out, 0, bottom, 0, right, reflect ? cv::BORDER_REFLECT_101 : cv::BORDER_CONSTANT,
                     cv::Scalar::all(0));
  return out;
}

void random_crop(const cv::Mat& image, const cv::Mat& mask, int h, int w, double foreground_p,
                 std::mt19937_64& rng, cv::Mat& image_out, cv::Mat& mask_out) {
  check_target(image, h, w, "random_crop");
  require(mask.empty() || mask.size() == image.size(), "random_crop: mask and image sizes differ");
  cv::Mat img = image, msk = mask;
  if (image.rows < h || image.cols < w) {  // too small: pad with background first
    const int bottom = std::max(0, h - image.rows), right = std::max(0, w - image.cols);
    cv::copyMakeBorder(image, img, 0, bottom, 0, right, cv::BORDER_CONSTANT, cv::Scalar::all(0));
    if (!mask.empty()) cv::copyMakeBorder(mask, msk, 0, bottom, 0, right, cv::BORDER_CONSTANT, cv::Scalar::all(0));
  }
  // A uniformly placed crop, kept when no foreground-centred crop is wanted or possible.
  const bool near_foreground = data_detail::uniform01(rng) < foreground_p;
  int top = static_cast<int>(data_detail::uniform_index(rng, static_cast<uint64_t>(img.rows - h + 1)));
  int left = static_cast<int>(data_detail::uniform_index(rng, static_cast<uint64_t>(img.cols - w + 1)));
  const int foreground = (near_foreground && !msk.empty()) ? cv::countNonZero(msk) : 0;
  if (foreground > 0) {
    // Centre on a random foreground pixel, jittered by up to a quarter of the crop so the
    // object is not always in the middle.
    const cv::Point p = random_foreground_pixel(msk, foreground, rng);
    const int jitter_y = static_cast<int>(data_detail::uniform(rng, -0.25, 0.25) * h);
    const int jitter_x = static_cast<int>(data_detail::uniform(rng, -0.25, 0.25) * w);
    top = clamp_start(p.y - h / 2 + jitter_y, img.rows, h);
    left = clamp_start(p.x - w / 2 + jitter_x, img.cols, w);
  }
  const cv::Rect roi(left, top, w, h);
  image_out = img(roi).clone();
  mask_out = msk.empty() ? cv::Mat() : msk(roi).clone();
}

}  // namespace leanseg
