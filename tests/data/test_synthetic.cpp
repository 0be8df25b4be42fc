#include <opencv2/imgproc.hpp>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "leanseg/mask_geometry.h"
#include "test_util.h"

namespace leanseg {
namespace {

bool same(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::norm(a, b, cv::NORM_INF) == 0;
}

void expect_valid_samples(const Dataset& d, int h, int w) {
  for (const auto& s : d.samples) {
    ASSERT_EQ(s.image.type(), CV_32FC1) << s.id;
    ASSERT_EQ(s.image.size(), cv::Size(w, h)) << s.id;
    ASSERT_EQ(s.mask.type(), CV_8UC1) << s.id;
    ASSERT_EQ(s.mask.size(), cv::Size(w, h)) << s.id;
    double lo = 0, hi = 0;
    cv::minMaxLoc(s.image, &lo, &hi);
    EXPECT_GE(lo, 0.0) << s.id;
    EXPECT_LE(hi, 1.0) << s.id;
    EXPECT_EQ(cv::countNonZero((s.mask != 0) & (s.mask != 1)), 0) << s.id;
    EXPECT_GT(cv::countNonZero(s.mask), 0) << s.id;
  }
}

TEST(Synthetic, UltrasoundIsDeterministicAndValid) {
  const Dataset a = make_synthetic_ultrasound(6, 96, 128, 17), b = make_synthetic_ultrasound(6, 96, 128, 17);
  const Dataset c = make_synthetic_ultrasound(6, 96, 128, 18);
  EXPECT_EQ(a.kind, "synthetic-ultrasound");
  ASSERT_EQ(a.samples.size(), 6u);
  expect_valid_samples(a, 96, 128);
  for (size_t i = 0; i < a.samples.size(); ++i) {
    EXPECT_TRUE(same(a.samples[i].image, b.samples[i].image));
    EXPECT_TRUE(same(a.samples[i].mask, b.samples[i].mask));
    EXPECT_EQ(a.samples[i].hc_mm, b.samples[i].hc_mm);
    EXPECT_FALSE(same(a.samples[i].image, c.samples[i].image));
  }
  // Sample i does not depend on how many samples are made.
  EXPECT_TRUE(same(make_synthetic_ultrasound(2, 96, 128, 17).samples[1].image, a.samples[1].image));
}

TEST(Synthetic, UltrasoundHeadCircumferenceMatchesTheMask) {
  const Dataset d = make_synthetic_ultrasound(5, 128, 128, 3);
  for (const auto& s : d.samples) {
    EXPECT_GE(s.pixel_size_mm, 0.1);
    EXPECT_LE(s.pixel_size_mm, 0.3);
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(s.mask.clone(), contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
    ASSERT_EQ(contours.size(), 1u) << s.id;
    const cv::RotatedRect e = cv::fitEllipse(contours[0]);
    const double hc_px = ellipse_perimeter(e.size.width / 2, e.size.height / 2);
    EXPECT_NEAR(hc_px * s.pixel_size_mm, s.hc_mm, 0.04 * s.hc_mm) << s.id;
    // The skull ring is bright: the mask's edge band is brighter than the rest of the image.
    cv::Mat inner;
    cv::erode(s.mask, inner, cv::Mat(), {-1, -1}, 3);
    const cv::Mat band = s.mask - inner;
    EXPECT_GT(cv::mean(s.image, band)[0], 2 * cv::mean(s.image, s.mask == 0)[0]) << s.id;
  }
}

TEST(Synthetic, WormsAreDeterministicThinAndBright) {
  const Dataset a = make_synthetic_worms(5, 128, 160, 9), b = make_synthetic_worms(5, 128, 160, 9);
  EXPECT_EQ(a.kind, "synthetic-worms");
  expect_valid_samples(a, 128, 160);
  for (size_t i = 0; i < a.samples.size(); ++i) {
    const Sample& s = a.samples[i];
    EXPECT_TRUE(same(s.image, b.samples[i].image));
    EXPECT_TRUE(same(s.mask, b.samples[i].mask));
    const double fraction = cv::countNonZero(s.mask) / static_cast<double>(s.mask.total());
    EXPECT_GT(fraction, 0.01) << s.id;
    EXPECT_LT(fraction, 0.4) << s.id;
    // Thin: a 4-pixel erosion removes nearly all worm pixels.
    cv::Mat eroded;
    cv::erode(s.mask, eroded, cv::getStructuringElement(cv::MORPH_ELLIPSE, {9, 9}));
    EXPECT_LT(cv::countNonZero(eroded), 0.1 * cv::countNonZero(s.mask)) << s.id;
    EXPECT_GT(cv::mean(s.image, s.mask)[0], cv::mean(s.image, s.mask == 0)[0] + 0.2) << s.id;
  }
}

TEST(Synthetic, RejectsBadSizes) {
  EXPECT_ERROR_CONTAINS(make_synthetic_worms(0, 64, 64, 1), "count must be at least 1");
  EXPECT_ERROR_CONTAINS(make_synthetic_ultrasound(2, 8, 64, 1), "at least 32x32");
}

}  // namespace
}  // namespace leanseg
