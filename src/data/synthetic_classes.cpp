// A synthetic 3-class dataset (background, ellipse, inner ring) for multi-class tests and demos.
// Each class has its own mean intensity under noise, so a tiny model separates them in seconds;
// the ring makes class 2 a shape nested in class 1, as organs and their lesions are.
#include <cmath>
#include <cstdio>
#include <opencv2/imgproc.hpp>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "random.h"

namespace leanseg {
namespace {
using namespace data_detail;

cv::RotatedRect box(cv::Point2d centre, double semi_a, double semi_b, double angle_deg) {
  return cv::RotatedRect(cv::Point2f(centre), cv::Size2f(static_cast<float>(2 * semi_a), static_cast<float>(2 * semi_b)),
                         static_cast<float>(angle_deg));
}

Sample ellipse_ring_sample(int index, int height, int width, uint64_t seed) {
  std::mt19937_64 rng(mix_seed(seed, static_cast<uint64_t>(index)));
  const double size = std::min(height, width);
  const double semi_a = uniform(rng, 0.25, 0.4) * size, semi_b = semi_a * uniform(rng, 0.65, 0.95);
  const cv::Point2d centre(uniform(rng, 0.4, 0.6) * width, uniform(rng, 0.4, 0.6) * height);
  const double angle = uniform(rng, 0, 180);
  // The ring spans 35%..70% of the ellipse's semi-axes: thick enough to score at 64x64.
  const double outer = 0.7, inner = 0.35;

  cv::Mat mask = cv::Mat::zeros(height, width, CV_8UC1);
  cv::ellipse(mask, box(centre, semi_a, semi_b, angle), cv::Scalar(1), cv::FILLED);
  cv::ellipse(mask, box(centre, outer * semi_a, outer * semi_b, angle), cv::Scalar(2), cv::FILLED);
  cv::ellipse(mask, box(centre, inner * semi_a, inner * semi_b, angle), cv::Scalar(1), cv::FILLED);

  const float level[3] = {static_cast<float>(uniform(rng, 0.1, 0.2)), static_cast<float>(uniform(rng, 0.4, 0.5)),
                          static_cast<float>(uniform(rng, 0.75, 0.85))};
  cv::Mat image(height, width, CV_32F);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      image.at<float>(y, x) = level[mask.at<uchar>(y, x)] + static_cast<float>(0.05 * normal01(rng));
  cv::min(image, 1.0, image);
  cv::max(image, 0.0, image);

  Sample s;
  char id[32];
  std::snprintf(id, sizeof id, "classes_%04d", index);
  s.id = s.group = id;
  s.image = image;
  s.mask = mask;
  return s;
}

}  // namespace

Dataset make_synthetic_classes(int count, int height, int width, uint64_t seed) {
  require(count >= 1, "make_synthetic_classes: count must be at least 1, got " + std::to_string(count));
  require(height >= 32 && width >= 32, "make_synthetic_classes: images must be at least 32x32, got " +
                                           std::to_string(width) + "x" + std::to_string(height));
  Dataset d;
  d.kind = "synthetic-classes";
  d.channels = {"gray"};
  d.max_value = 255;
  d.num_classes = 3;
  for (int i = 0; i < count; ++i) d.samples.push_back(ellipse_ring_sample(i, height, width, seed));
  return d;
}

}  // namespace leanseg
