#include <opencv2/imgproc.hpp>
#include <set>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "test_util.h"

namespace leanseg {
namespace {

// A dim noisy image with a bright off-centre square; the mask is exactly the square.
void square_scene(cv::Mat& image, cv::Mat& mask) {
  image = cv::Mat(96, 128, CV_32FC1);
  cv::RNG noise(3);
  noise.fill(image, cv::RNG::UNIFORM, 0.0, 0.2);
  mask = cv::Mat::zeros(96, 128, CV_8UC1);
  const cv::Rect square(20, 30, 30, 24);
  image(square).setTo(1.0);
  mask(square).setTo(1);
}

AugmentOptions everything_always() {
  AugmentOptions o;
  o.flip_p = o.rotate_p = o.scale_p = o.translate_p = 1.0;
  return o;
}

TEST(Augment, FlipOnlyIsExact) {
  cv::Mat image, mask;
  square_scene(image, mask);
  const cv::Mat original_image = image.clone(), original_mask = mask.clone();
  AugmentOptions o;
  o.flip_p = 1;
  o.rotate_p = o.scale_p = o.translate_p = 0;
  std::mt19937_64 rng(1);
  augment(image, mask, o, rng);
  cv::Mat flipped_image, flipped_mask;
  cv::flip(original_image, flipped_image, 1);
  cv::flip(original_mask, flipped_mask, 1);
  EXPECT_EQ(cv::norm(image, flipped_image, cv::NORM_INF), 0);
  EXPECT_EQ(cv::norm(mask, flipped_mask, cv::NORM_INF), 0);
}

// Quarter turns alone on a square image are exact rotations, image and mask alike, and every
// one of the four turns is drawn.
TEST(Augment, QuarterTurnsAreExactAndAllFourOccur) {
  cv::Mat scene, scene_mask;
  square_scene(scene, scene_mask);
  const cv::Rect square_part(0, 0, 96, 96);
  AugmentOptions o;
  o.flip_p = o.rotate_p = o.scale_p = o.translate_p = 0;
  o.rot90 = true;
  std::set<int> seen;
  for (uint64_t seed = 0; seed < 24; ++seed) {
    cv::Mat image = scene(square_part).clone(), mask = scene_mask(square_part).clone();
    std::mt19937_64 rng(seed);
    augment(image, mask, o, rng);
    int turns = -1;
    for (int k = 0; k < 4 && turns < 0; ++k) {
      cv::Mat expected = scene(square_part).clone(), expected_mask = scene_mask(square_part).clone();
      for (int i = 0; i < k; ++i) {
        cv::rotate(expected, expected, cv::ROTATE_90_COUNTERCLOCKWISE);
        cv::rotate(expected_mask, expected_mask, cv::ROTATE_90_COUNTERCLOCKWISE);
      }
      if (cv::norm(image, expected, cv::NORM_INF) == 0 && cv::norm(mask, expected_mask, cv::NORM_INF) == 0) turns = k;
    }
    ASSERT_GE(turns, 0) << "seed " << seed << ": not an exact quarter turn of image and mask";
    seen.insert(turns);
  }
  EXPECT_EQ(seen.size(), 4u);
  // Folded into the warp (non-square image, or with a rotation): the mask stays 0/1.
  cv::Mat image, mask;
  square_scene(image, mask);
  AugmentOptions warp = everything_always();
  warp.rot90 = true;
  std::mt19937_64 rng(5);
  augment(image, mask, warp, rng);
  EXPECT_EQ(cv::countNonZero(mask == 0) + cv::countNonZero(mask == 1), static_cast<int>(mask.total()));
}

TEST(Augment, NothingChangesWhenAllProbabilitiesAreZero) {
  cv::Mat image, mask;
  square_scene(image, mask);
  const cv::Mat original = image.clone();
  AugmentOptions o;
  o.flip_p = o.rotate_p = o.scale_p = o.translate_p = 0;
  std::mt19937_64 rng(1);
  augment(image, mask, o, rng);
  EXPECT_EQ(cv::norm(image, original, cv::NORM_INF), 0);
}

TEST(Augment, WarpKeepsMaskBinaryAndOnTheBrightSquare) {
  for (uint64_t seed = 0; seed < 40; ++seed) {
    cv::Mat image, mask;
    square_scene(image, mask);
    const cv::Mat original = image.clone();
    std::mt19937_64 rng(seed);
    augment(image, mask, everything_always(), rng);
    ASSERT_EQ(mask.type(), CV_8UC1);
    ASSERT_EQ(image.type(), CV_32FC1);
    ASSERT_EQ(cv::countNonZero((mask != 0) & (mask != 1)), 0) << "seed " << seed;
    ASSERT_GT(cv::countNonZero(mask), 200) << "seed " << seed;
    EXPECT_GT(cv::norm(image, original, cv::NORM_INF), 0.1) << "the image was transformed";
    // Aligned: the mask covers the bright square. Edge pixels are blended by the bilinear
    // image warp, so the inside mean is a little below 1.
    const double inside = cv::mean(image, mask)[0];
    const double outside = cv::mean(image, mask == 0)[0];
    EXPECT_GT(inside, 0.9) << "seed " << seed;
    EXPECT_LT(outside, 0.15) << "seed " << seed;
  }
}

TEST(Augment, MultiChannelImagesWarpTogether) {
  cv::Mat image, mask;
  square_scene(image, mask);
  cv::Mat two;
  cv::merge(std::vector<cv::Mat>{image, 1.0 - image}, two);
  std::mt19937_64 rng(5);
  augment(two, mask, everything_always(), rng);
  ASSERT_EQ(two.type(), CV_32FC2);
  std::vector<cv::Mat> planes;
  cv::split(two, planes);
  EXPECT_GT(cv::mean(planes[0], mask)[0], 0.9);
  EXPECT_LT(cv::mean(planes[1], mask)[0], 0.1);
}

TEST(Augment, IsDeterministicForARandomStream) {
  cv::Mat a, ma, b, mb;
  square_scene(a, ma);
  square_scene(b, mb);
  std::mt19937_64 r1(99), r2(99);
  augment(a, ma, AugmentOptions{}, r1);
  augment(b, mb, AugmentOptions{}, r2);
  EXPECT_EQ(cv::norm(a, b, cv::NORM_INF), 0);
  EXPECT_EQ(cv::norm(ma, mb, cv::NORM_INF), 0);
  EXPECT_EQ(r1(), r2());
}

TEST(Augment, DefaultRecipeSometimesLeavesImagesAloneAndSometimesFlips) {
  int unchanged = 0, changed = 0;
  for (uint64_t seed = 0; seed < 64; ++seed) {
    cv::Mat image, mask;
    square_scene(image, mask);
    const cv::Mat original = image.clone();
    std::mt19937_64 rng(seed);
    augment(image, mask, AugmentOptions{}, rng);
    (cv::norm(image, original, cv::NORM_INF) == 0 ? unchanged : changed)++;
  }
  // All four transforms skipped has probability 1/16.
  EXPECT_GT(unchanged, 0);
  EXPECT_LT(unchanged, 16);
  EXPECT_GT(changed, 48);
}

TEST(Augment, RejectsMismatchedMaskAndBadOptions) {
  cv::Mat image(10, 10, CV_32FC1, cv::Scalar(0)), mask = cv::Mat::zeros(10, 11, CV_8UC1);
  std::mt19937_64 rng(1);
  EXPECT_ERROR_CONTAINS(augment(image, mask, AugmentOptions{}, rng), "sizes differ");
  AugmentOptions o;
  o.flip_p = 1.5;
  mask = cv::Mat::zeros(10, 10, CV_8UC1);
  EXPECT_ERROR_CONTAINS(augment(image, mask, o, rng), "flip probability must be in [0, 1]");
}

}  // namespace
}  // namespace leanseg
