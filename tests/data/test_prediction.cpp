// Test-time mirroring (prediction.h) around a hand-made network.
#include <opencv2/core.hpp>

#include "leanseg/error.h"
#include "leanseg/prediction.h"
#include "test_util.h"

namespace leanseg {
namespace {

// A network that is not mirror-symmetric: the probability is the column's position, x / (W - 1),
// plus a tenth of the image. Mirroring left-right averages x/(W-1) with (W-1-x)/(W-1) = 1/2.
cv::Mat column_ramp(const cv::Mat& image01, int* calls) {
  ++*calls;
  cv::Mat p(image01.size(), CV_32FC1);
  for (int y = 0; y < p.rows; ++y)
    for (int x = 0; x < p.cols; ++x) p.at<float>(y, x) = x / float(p.cols - 1) + 0.1f * image01.at<float>(y, x);
  return p;
}

TEST(Prediction, MirroringAveragesTheFlippedPassesFlippedBack) {
  cv::Mat image(6, 8, CV_32FC1);
  cv::randu(image, 0.f, 1.f);
  int calls = 0;
  const ProbabilityFn net = [&](const cv::Mat& m) { return column_ramp(m, &calls); };

  const cv::Mat h = mirrored_probability_fn(net, "h")(image);
  EXPECT_EQ(calls, 2);
  // Each pass sees the pixel's own value at its flipped-back place: the image term is unchanged.
  for (int y = 0; y < image.rows; ++y)
    for (int x = 0; x < image.cols; ++x) EXPECT_NEAR(h.at<float>(y, x), 0.5f + 0.1f * image.at<float>(y, x), 1e-6f);

  calls = 0;
  const cv::Mat hv = mirrored_probability_fn(net, "hv")(image);
  EXPECT_EQ(calls, 4);
  EXPECT_LE(cv::norm(hv, h, cv::NORM_INF), 1e-6);  // up-down flips do not change a column ramp

  calls = 0;
  const cv::Mat none = mirrored_probability_fn(net, "none")(image);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(cv::norm(none, column_ramp(image, &calls), cv::NORM_INF), 0.0);
}

TEST(Prediction, UnknownMirroringIsRefused) {
  const ProbabilityFn net = [](const cv::Mat& m) { return m; };
  try {
    mirrored_probability_fn(net, "flip");
    FAIL() << "accepted 'flip'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'flip'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace leanseg
