// Synthetic datasets (D3) for tests, demos and quick experiments. Every sample is drawn from its
// own random stream (seed, index), so sample i is the same whatever `count` is.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <opencv2/imgproc.hpp>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "leanseg/mask_geometry.h"
#include "random.h"

namespace leanseg {
namespace {
using namespace data_detail;

constexpr int kShift = 4;  // fixed-point bits for sub-pixel drawing with OpenCV
constexpr double kOne = 1 << kShift;

void check_size(const char* what, int count, int height, int width) {
  require(count >= 1, std::string(what) + ": count must be at least 1, got " + std::to_string(count));
  require(height >= 32 && width >= 32, std::string(what) + ": images must be at least 32x32, got " +
                                           std::to_string(width) + "x" + std::to_string(height));
}

std::string numbered(const char* prefix, int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s_%04d", prefix, i);
  return buf;
}

// Rayleigh-distributed multiplicative speckle with mean 1, slightly blurred because real
// speckle grains span a few pixels.
cv::Mat speckle(int height, int width, std::mt19937_64& rng) {
  cv::Mat noise(height, width, CV_32F);
  const double to_unit_mean = 1.0 / std::sqrt(M_PI / 2.0);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      noise.at<float>(y, x) = static_cast<float>(std::sqrt(-2.0 * std::log(1.0 - uniform01(rng))) * to_unit_mean);
  cv::GaussianBlur(noise, noise, cv::Size(0, 0), 0.7);
  return noise;
}

// Ultrasound fan: the sector below a transducer placed just above the image, darker with depth.
cv::Mat fan(int height, int width, std::mt19937_64& rng) {
  const double half_angle = uniform(rng, 40, 55) * M_PI / 180;
  const double apex_x = width / 2.0, apex_y = -0.1 * height;
  const double radius = 1.08 * height;
  cv::Mat out(height, width, CV_32F);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const double dx = x - apex_x, dy = y - apex_y, r = std::hypot(dx, dy);
      const bool inside = r < radius && std::abs(std::atan2(dx, dy)) < half_angle;
      out.at<float>(y, x) = inside ? static_cast<float>(0.22 - 0.1 * r / radius) : 0.02f;
    }
  return out;
}

cv::RotatedRect ellipse_box(cv::Point2d centre, double semi_a, double semi_b, double angle_deg) {
  return cv::RotatedRect(cv::Point2f(centre), cv::Size2f(static_cast<float>(2 * semi_a), static_cast<float>(2 * semi_b)),
                         static_cast<float>(angle_deg));
}

Sample ultrasound_sample(int index, int height, int width, uint64_t seed) {
  std::mt19937_64 rng(mix_seed(seed, static_cast<uint64_t>(index)));
  const double size = std::min(height, width);
  const double semi_a = uniform(rng, 0.22, 0.36) * size;
  const double semi_b = semi_a * uniform(rng, 0.72, 0.92);
  const cv::Point2d centre(uniform(rng, 0.38, 0.62) * width, uniform(rng, 0.42, 0.6) * height);
  const double angle = uniform(rng, 0, 180);
  const double skull = std::max(2.0, uniform(rng, 0.025, 0.045) * size);

  cv::Mat image = fan(height, width, rng);
  // The brain is darker than the surrounding tissue, with a bright midline and a few faint
  // structures so the network cannot rely on "dark blob" alone.
  cv::ellipse(image, ellipse_box(centre, semi_a, semi_b, angle), cv::Scalar(uniform(rng, 0.06, 0.12)), cv::FILLED);
  const double rad = angle * M_PI / 180;
  const cv::Point2d major(std::cos(rad), std::sin(rad));
  const cv::Point2d tip = major * (semi_a * 0.8);
  cv::line(image, centre - tip, centre + tip, cv::Scalar(0.35), 2, cv::LINE_AA);
  for (int k = 0; k < 2; ++k) {
    const cv::Point2d offset(uniform(rng, -0.4, 0.4) * semi_b, uniform(rng, -0.4, 0.4) * semi_b);
    cv::ellipse(image, ellipse_box(centre + offset, 0.2 * semi_b, 0.1 * semi_b, uniform(rng, 0, 180)),
                cv::Scalar(uniform(rng, 0.18, 0.3)), cv::FILLED, cv::LINE_AA);
  }
  // Skull: a bright ring whose outer border is the ellipse (semi_a, semi_b), the head outline.
  cv::ellipse(image, ellipse_box(centre, semi_a - skull / 2, semi_b - skull / 2, angle),
              cv::Scalar(uniform(rng, 0.75, 0.95)), static_cast<int>(std::lround(skull)), cv::LINE_AA);
  cv::GaussianBlur(image, image, cv::Size(0, 0), 1.0);
  image = image.mul(speckle(height, width, rng));
  cv::min(image, 1.0, image);
  cv::max(image, 0.0, image);

  Sample s;
  s.id = s.group = numbered("ultrasound", index);
  s.image = image;
  s.mask = cv::Mat::zeros(height, width, CV_8UC1);
  cv::ellipse(s.mask, ellipse_box(centre, semi_a, semi_b, angle), cv::Scalar(1), cv::FILLED);
  s.pixel_size_mm = uniform(rng, 0.1, 0.3);
  s.hc_mm = ellipse_perimeter(semi_a, semi_b) * s.pixel_size_mm;
  return s;
}

// Smooth low-frequency texture plus fine noise, like an unevenly lit well.
cv::Mat textured_background(int height, int width, std::mt19937_64& rng) {
  const int grid_h = height / 16 + 2, grid_w = width / 16 + 2;
  cv::Mat coarse(grid_h, grid_w, CV_32F);
  for (int y = 0; y < grid_h; ++y)
    for (int x = 0; x < grid_w; ++x) coarse.at<float>(y, x) = static_cast<float>(uniform(rng, -0.08, 0.08));
  cv::Mat background;
  cv::resize(coarse, background, cv::Size(width, height), 0, 0, cv::INTER_CUBIC);
  background += uniform(rng, 0.25, 0.45);
  return background;
}

// A worm's centre line: a walk whose curvature itself wanders, so the path bends smoothly.
std::vector<cv::Point> worm_path(int height, int width, std::mt19937_64& rng) {
  const double size = std::min(height, width);
  const double length = uniform(rng, 0.25, 0.6) * size, step = 1.5;
  double x = uniform(rng, 0, width - 1), y = uniform(rng, 0, height - 1);
  double heading = uniform(rng, 0, 2 * M_PI), curvature = 0;
  std::vector<cv::Point> points;
  for (double walked = 0; walked <= length; walked += step) {
    points.emplace_back(static_cast<int>(std::lround(x * kOne)), static_cast<int>(std::lround(y * kOne)));
    curvature = std::clamp(curvature + 0.015 * normal01(rng), -0.06, 0.06);
    heading += curvature * step;
    x += step * std::cos(heading);
    y += step * std::sin(heading);
  }
  return points;
}

Sample worms_sample(int index, int height, int width, uint64_t seed) {
  std::mt19937_64 rng(mix_seed(seed, static_cast<uint64_t>(index)));
  cv::Mat image = textured_background(height, width, rng);
  cv::Mat mask = cv::Mat::zeros(height, width, CV_8UC1);
  const int worms = 3 + static_cast<int>(uniform_index(rng, 5));
  for (int w = 0; w < worms; ++w) {
    const std::vector<std::vector<cv::Point>> path = {worm_path(height, width, rng)};
    const int thickness = 3 + static_cast<int>(uniform_index(rng, 4));  // 3–6 px
    const double brightness = uniform(rng, 0.3, 0.5);
    // The same geometry goes into mask and image, so the label matches the drawn worm exactly.
    cv::polylines(mask, path, false, cv::Scalar(1), thickness, cv::LINE_8, kShift);
    cv::polylines(image, path, false, cv::Scalar(0.45 + brightness), thickness, cv::LINE_8, kShift);
  }
  cv::GaussianBlur(image, image, cv::Size(0, 0), 0.6);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) image.at<float>(y, x) += static_cast<float>(0.03 * normal01(rng));
  cv::min(image, 1.0, image);
  cv::max(image, 0.0, image);

  Sample s;
  s.id = s.group = numbered("worms", index);
  s.image = image;
  s.mask = mask;
  return s;
}

}  // namespace

Dataset make_synthetic_ultrasound(int count, int height, int width, uint64_t seed) {
  check_size("make_synthetic_ultrasound", count, height, width);
  Dataset d;
  d.kind = "synthetic-ultrasound";
  d.channels = {"gray"};
  d.max_value = 255;  // as if saved as 8-bit images
  for (int i = 0; i < count; ++i) d.samples.push_back(ultrasound_sample(i, height, width, seed));
  return d;
}

Dataset make_synthetic_worms(int count, int height, int width, uint64_t seed) {
  check_size("make_synthetic_worms", count, height, width);
  Dataset d;
  d.kind = "synthetic-worms";
  d.channels = {"gray"};
  d.max_value = 255;
  for (int i = 0; i < count; ++i) d.samples.push_back(worms_sample(i, height, width, seed));
  return d;
}

}  // namespace leanseg
