// Augmentation: flip, rotation (optionally by quarter turns too: with the flip, the dihedral
// group D4), scale and translation folded into one affine warp, so the image is interpolated
// once and the mask (nearest neighbour) stays exactly 0/1 and aligned.
#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "random.h"

namespace leanseg {
namespace {
using data_detail::uniform;
using data_detail::uniform01;

struct Transform {
  bool flip = false;
  int quarter_turns = 0;  // exact counter-clockwise turns, after the flip (square images, no warp)
  double angle_deg = 0, scale = 1, shift_x = 0, shift_y = 0;
  bool warps() const { return angle_deg != 0 || scale != 1 || shift_x != 0 || shift_y != 0; }
};

// Always consumes the same number of draws for given options, so later users of `rng` see the
// same stream whichever transforms happened to be chosen (rot90 adds one draw).
Transform draw_transform(const AugmentOptions& o, int height, int width, std::mt19937_64& rng) {
  const double u_flip = uniform01(rng), u_rot = uniform01(rng), u_scale = uniform01(rng), u_shift = uniform01(rng);
  const double angle = uniform(rng, -o.rotate_deg, o.rotate_deg);
  const double scale = uniform(rng, 1 - o.scale, 1 + o.scale);
  const double sx = uniform(rng, -o.translate, o.translate), sy = uniform(rng, -o.translate, o.translate);
  Transform t;
  t.flip = u_flip < o.flip_p;
  if (u_rot < o.rotate_p) t.angle_deg = angle;
  if (u_scale < o.scale_p) t.scale = scale;
  if (u_shift < o.translate_p) {
    t.shift_x = sx * width;
    t.shift_y = sy * height;
  }
  if (o.rot90) {
    const int k = std::min(3, static_cast<int>(uniform01(rng) * 4));
    // Exact when nothing else warps a square image; otherwise part of the one affine warp.
    if (height == width && !t.warps()) t.quarter_turns = k;
    else t.angle_deg += 90.0 * k;
  }
  return t;
}

// Forward map (source → destination): flip about the vertical centre line, then rotate and
// scale about the centre, then shift.
cv::Mat affine_matrix(const Transform& t, int height, int width) {
  const cv::Point2f centre((width - 1) / 2.0f, (height - 1) / 2.0f);
  cv::Mat m = cv::getRotationMatrix2D(centre, t.angle_deg, t.scale);  // 2x3, CV_64F
  for (int i = 0; i < 2; ++i)  // cos 90° is 6e-17 in doubles: make quarter turns land on pixels
    for (int j = 0; j < 2; ++j)
      if (std::abs(m.at<double>(i, j)) < 1e-12) m.at<double>(i, j) = 0;
  if (t.flip) {
    // Compose with x -> (width-1) - x: negate the x column and move its offset.
    m.at<double>(0, 2) += m.at<double>(0, 0) * (width - 1);
    m.at<double>(1, 2) += m.at<double>(1, 0) * (width - 1);
    m.at<double>(0, 0) = -m.at<double>(0, 0);
    m.at<double>(1, 0) = -m.at<double>(1, 0);
  }
  m.at<double>(0, 2) += t.shift_x;
  m.at<double>(1, 2) += t.shift_y;
  return m;
}

void check_options(const AugmentOptions& o) {
  auto probability = [](double p, const char* name) {
    require(p >= 0 && p <= 1, std::string("augmentation: ") + name + " must be in [0, 1], got " + std::to_string(p));
  };
  probability(o.flip_p, "flip probability");
  probability(o.rotate_p, "rotation probability");
  probability(o.scale_p, "scale probability");
  probability(o.translate_p, "translation probability");
  require(o.rotate_deg >= 0 && o.scale >= 0 && o.scale < 1 && o.translate >= 0 && o.translate <= 1,
          "augmentation: ranges must satisfy rotate_deg >= 0, 0 <= scale < 1, 0 <= translate <= 1");
}

}  // namespace

void augment(cv::Mat& image, cv::Mat& mask, const AugmentOptions& o, std::mt19937_64& rng) {
  check_options(o);
  require(!image.empty(), "augment: empty image");
  require(mask.empty() || mask.size() == image.size(), "augment: mask and image sizes differ");
  const Transform t = draw_transform(o, image.rows, image.cols, rng);
  if (!t.warps()) {  // flips and quarter turns alone are exact, no interpolation needed
    if (t.flip) {
      cv::flip(image, image, 1);
      if (!mask.empty()) cv::flip(mask, mask, 1);
    }
    if (t.quarter_turns > 0) {
      const int code = t.quarter_turns == 1 ? cv::ROTATE_90_COUNTERCLOCKWISE
                       : t.quarter_turns == 2 ? cv::ROTATE_180 : cv::ROTATE_90_CLOCKWISE;
      cv::rotate(image, image, code);
      if (!mask.empty()) cv::rotate(mask, mask, code);
    }
    return;
  }
  const cv::Mat m = affine_matrix(t, image.rows, image.cols);
  cv::Mat warped_image, warped_mask;
  cv::warpAffine(image, warped_image, m, image.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar::all(0));
  image = warped_image;
  if (!mask.empty()) {
    cv::warpAffine(mask, warped_mask, m, mask.size(), cv::INTER_NEAREST, cv::BORDER_CONSTANT, cv::Scalar::all(0));
    mask = warped_mask;
  }
}

}  // namespace leanseg
