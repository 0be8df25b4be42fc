#include <opencv2/imgproc.hpp>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "test_util.h"

namespace leanseg {
namespace {

bool is_binary01(const cv::Mat& m) { return cv::countNonZero((m != 0) & (m != 1)) == 0; }

TEST(Geometry, ResizeImageKeepsTypeAndConstantValues) {
  const cv::Mat image(50, 70, CV_32FC2, cv::Scalar(0.25, 0.75));
  for (const cv::Size target : {cv::Size(35, 25), cv::Size(140, 100), cv::Size(20, 90)}) {
    const cv::Mat out = resize_image(image, target.height, target.width);
    EXPECT_EQ(out.size(), target);
    EXPECT_EQ(out.type(), CV_32FC2);
    const cv::Scalar mean = cv::mean(out);
    EXPECT_NEAR(mean[0], 0.25, 1e-5);
    EXPECT_NEAR(mean[1], 0.75, 1e-5);
  }
}

TEST(Geometry, ShrinkingAveragesInsteadOfSkipping) {
  // A one-pixel checkerboard shrunk by 2 must become uniform grey (area averaging); a
  // sampling resize would keep only black or only white pixels.
  cv::Mat board(64, 64, CV_32FC1);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) board.at<float>(y, x) = static_cast<float>((x + y) % 2);
  const cv::Mat out = resize_image(board, 32, 32);
  double lo = 0, hi = 0;
  cv::minMaxLoc(out, &lo, &hi);
  EXPECT_NEAR(lo, 0.5, 1e-5);
  EXPECT_NEAR(hi, 0.5, 1e-5);
}

TEST(Geometry, ResizeMaskStaysBinary) {
  cv::Mat mask = cv::Mat::zeros(37, 53, CV_8UC1);
  cv::circle(mask, {20, 18}, 10, cv::Scalar(1), cv::FILLED);
  for (const cv::Size target : {cv::Size(16, 16), cv::Size(200, 150)}) {
    const cv::Mat out = resize_mask(mask, target.height, target.width);
    EXPECT_EQ(out.size(), target);
    EXPECT_EQ(out.type(), CV_8UC1);
    EXPECT_TRUE(is_binary01(out));
    const double fraction = cv::countNonZero(out) / static_cast<double>(out.total());
    EXPECT_NEAR(fraction, cv::countNonZero(mask) / static_cast<double>(mask.total()), 0.03);
  }
}

TEST(Geometry, PadToMultiplePadsBottomRightOnly) {
  cv::Mat m(37, 50, CV_32FC1);
  cv::randu(m, 0.1, 1.0);
  const cv::Mat zeros = pad_to_multiple(m, 32, false);
  EXPECT_EQ(zeros.size(), cv::Size(64, 64));
  EXPECT_EQ(cv::norm(zeros(cv::Rect(0, 0, 50, 37)), m, cv::NORM_INF), 0);
  EXPECT_EQ(cv::countNonZero(zeros(cv::Rect(0, 37, 64, 27))), 0);
  const cv::Mat mirrored = pad_to_multiple(m, 32, true);
  EXPECT_EQ(mirrored.size(), cv::Size(64, 64));
  EXPECT_EQ(mirrored.at<float>(37, 3), m.at<float>(35, 3));  // reflect without repeating the edge
  EXPECT_EQ(mirrored.at<float>(5, 50), m.at<float>(5, 48));
  EXPECT_EQ(pad_to_multiple(m, 1, true).size(), m.size());
  const cv::Mat exact(64, 32, CV_8UC1, cv::Scalar(1));
  EXPECT_EQ(pad_to_multiple(exact, 32, false).size(), exact.size());
  EXPECT_ERROR_CONTAINS(pad_to_multiple(m, 0, false), "divisor must be at least 1");
}

TEST(Geometry, RandomCropKeepsImageAndMaskAligned) {
  // Image = mask as float, so any misalignment shows as a difference.
  cv::Mat mask = cv::Mat::zeros(120, 160, CV_8UC1);
  cv::circle(mask, {140, 100}, 6, cv::Scalar(1), cv::FILLED);
  cv::Mat image;
  mask.convertTo(image, CV_32F);
  int with_foreground = 0;
  for (uint64_t seed = 0; seed < 30; ++seed) {
    std::mt19937_64 rng(seed);
    cv::Mat ci, cm;
    random_crop(image, mask, 48, 64, 1.0, rng, ci, cm);
    ASSERT_EQ(ci.size(), cv::Size(64, 48));
    ASSERT_EQ(cm.size(), cv::Size(64, 48));
    cv::Mat cm_float;
    cm.convertTo(cm_float, CV_32F);
    EXPECT_EQ(cv::norm(ci, cm_float, cv::NORM_INF), 0);
    with_foreground += cv::countNonZero(cm) > 0;
  }
  // foreground_p = 1: every crop sees the small blob (a uniform crop would mostly miss it).
  EXPECT_EQ(with_foreground, 30);
}

TEST(Geometry, RandomCropPadsSmallImages) {
  const cv::Mat image(20, 30, CV_32FC1, cv::Scalar(0.5));
  const cv::Mat mask(20, 30, CV_8UC1, cv::Scalar(1));
  std::mt19937_64 rng(3);
  cv::Mat ci, cm;
  random_crop(image, mask, 32, 32, 0.5, rng, ci, cm);
  EXPECT_EQ(ci.size(), cv::Size(32, 32));
  EXPECT_EQ(cm.size(), cv::Size(32, 32));
  EXPECT_EQ(cv::countNonZero(cm), 20 * 30);
  EXPECT_NEAR(cv::sum(ci)[0], 0.5 * 20 * 30, 1e-3);
}

}  // namespace
}  // namespace leanseg
