// Test-time mirroring (prediction.h) around a hand-made network; the checks and the error
// handling of prediction runs over many images (same-stem inputs, --skip-errors).
#include <cmath>
#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

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

// --- mask post-processing (--postprocess) -------------------------------------------------------

// A predicted head as a network gets it wrong: a filled ellipse (semi-axes 120, 80, at 30°) with a
// wedge bitten out of its rim, plus a false-positive speck far away.
cv::Mat bitten_head_with_speck() {
  cv::Mat mask = cv::Mat::zeros(300, 400, CV_8UC1);
  cv::ellipse(mask, {210, 140}, {120, 80}, 30, 0, 360, 1, cv::FILLED);
  cv::ellipse(mask, {210, 140}, {130, 90}, 30, 80, 100, 0, cv::FILLED);  // a 20° wedge of the rim gone
  cv::ellipse(mask, {210, 140}, {60, 40}, 30, 0, 360, 1, cv::FILLED);    // only to the inner half
  cv::rectangle(mask, {2, 2}, {12, 12}, 1, cv::FILLED);
  return mask;
}

TEST(Postprocess, EllipseFillsTheFittedHeadWithTheAnalyticPerimeterAndArea) {
  const cv::Mat raw = bitten_head_with_speck();
  const cv::Mat filled = postprocess_mask(raw, "ellipse");
  ASSERT_EQ(filled.type(), CV_8UC1);
  ASSERT_EQ(filled.size(), raw.size());
  EXPECT_EQ(cv::countNonZero(filled(cv::Rect(0, 0, 20, 20))), 0) << "the speck is not part of the head";
  double lo = 0, hi = 0;
  cv::minMaxLoc(filled, &lo, &hi);
  EXPECT_EQ(hi, 1.0) << "masks are 0/1";
  // The wedge is filled again (its centre lies on the rim, between the inner and outer radii).
  const double t = 90 * CV_PI / 180, rot = 30 * CV_PI / 180, r = 100;  // a point at 90° on the 100 px ring
  const int px = static_cast<int>(std::lround(210 + r * std::cos(t) * std::cos(rot) - (r * 80 / 120.0) * std::sin(t) * std::sin(rot)));
  const int py = static_cast<int>(std::lround(140 + r * std::cos(t) * std::sin(rot) + (r * 80 / 120.0) * std::sin(t) * std::cos(rot)));
  EXPECT_EQ(raw.at<uchar>(py, px), 0) << "the wedge was bitten out here";
  EXPECT_EQ(filled.at<uchar>(py, px), 1);
  // The fit of the bitten outline still finds the head; HC and area match the analytic ellipse.
  const EllipseFit fit = fit_ellipse(filled);
  ASSERT_TRUE(fit.ok);
  EXPECT_NEAR(fit.circumference_px / ellipse_perimeter(120, 80), 1.0, 0.02);
  EXPECT_NEAR(cv::countNonZero(filled) / (CV_PI * 120 * 80), 1.0, 0.03);
}

TEST(Postprocess, LargestKeepsOnlyTheBiggestComponentAsItIs) {
  const cv::Mat raw = bitten_head_with_speck();
  const cv::Mat largest = postprocess_mask(raw, "largest");
  EXPECT_EQ(cv::countNonZero(largest), cv::countNonZero(raw) - 11 * 11) << "only the 11x11 speck is removed";
  EXPECT_EQ(cv::countNonZero(largest != raw), 11 * 11);
}

TEST(Postprocess, NoneReturnsTheMaskEmptyStaysEmptyAndUnknownNamesAreRefused) {
  const cv::Mat raw = bitten_head_with_speck();
  EXPECT_EQ(cv::countNonZero(postprocess_mask(raw, "none") != raw), 0);
  const cv::Mat empty = cv::Mat::zeros(30, 40, CV_8UC1);
  for (const std::string how : {"largest", "ellipse"}) {
    const cv::Mat out = postprocess_mask(empty, how);
    EXPECT_EQ(out.size(), empty.size()) << how;
    EXPECT_EQ(cv::countNonZero(out), 0) << how;
  }
  try {
    postprocess_mask(raw, "convex");
    FAIL() << "accepted 'convex'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'convex'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("ellipse"), std::string::npos) << e.what();
  }
}

// --- prediction runs over many images (issue 17) ------------------------------------------------

struct PredictionJobs : ::testing::Test {
  test::TempDir dir;
  void SetUp() override {
    std::filesystem::create_directories(dir.path / "a");
    std::filesystem::create_directories(dir.path / "b");
    for (const char* f : {"a/x.png", "b/x.tif", "b/y.png"}) cv::imwrite(dir.file(f), cv::Mat::zeros(4, 4, CV_8UC1));
  }
};

TEST_F(PredictionJobs, TwoInputsWithTheSameStemAreRefusedNamingBoth) {
  EXPECT_NO_THROW(check_prediction_jobs({{dir.file("a/x.png")}, {dir.file("b/y.png")}}, 1));
  EXPECT_ERROR_CONTAINS(check_prediction_jobs({{dir.file("a/x.png")}, {dir.file("b/y.png")}, {dir.file("b/x.tif")}}, 1),
                        "inputs '" + dir.file("a/x.png") + "' and '" + dir.file("b/x.tif") +
                            "' have the same file stem: both would write x_mask.png");
  // A folder holding x.png and x.tif gives the same clash.
  cv::imwrite(dir.file("a/x.tif"), cv::Mat::zeros(4, 4, CV_8UC1));
  EXPECT_ERROR_CONTAINS(check_prediction_jobs(expand_image_inputs({dir.file("a")}), 1), "have the same file stem");
}

TEST_F(PredictionJobs, MissingFilesAndWrongFileCountsAreRefused) {
  EXPECT_ERROR_CONTAINS(check_prediction_jobs({{dir.file("a/x.png")}, {dir.file("a/none.png")}}, 1),
                        "input image '" + dir.file("a/none.png") + "' does not exist");
  EXPECT_ERROR_CONTAINS(check_prediction_jobs({{dir.file("a/x.png"), dir.file("b/y.png")}}, 3), "the model takes 3 channels");
  EXPECT_EQ(job_files({"p"}, 2), (std::vector<std::string>{"p", "p"}));
  EXPECT_EQ(job_files({"p", "q"}, 2), (std::vector<std::string>{"p", "q"}));
}

TEST(PredictionRun, WithoutSkipErrorsTheFirstFailureEndsTheRunNamingTheFile) {
  std::vector<std::string> done;
  const auto one = [&](const std::vector<std::string>& job) {
    if (job[0] == "bad.png") throw cv::Exception(0, "decoder broke", "imread", "x.cpp", 1);
    done.push_back(job[0]);
  };
  EXPECT_ERROR_CONTAINS(for_each_job({{"a.png"}, {"bad.png"}, {"c.png"}}, false, "test", one), "input image 'bad.png': ");
  EXPECT_EQ(done, std::vector<std::string>{"a.png"});
}

TEST(PredictionRun, SkipErrorsReportsEachFailureAndRunsTheOthers) {
  std::vector<std::string> done;
  const auto one = [&](const std::vector<std::string>& job) {
    if (job[0].rfind("bad", 0) == 0) throw Error("input image '" + job[0] + "' cannot be decoded");
    done.push_back(job[0]);
  };
  ::testing::internal::CaptureStderr();
  const size_t failed = for_each_job({{"bad1.png"}, {"b.png"}, {"bad2.png"}, {"d.png"}}, true, "test", one);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(failed, 2u);
  EXPECT_EQ(done, (std::vector<std::string>{"b.png", "d.png"}));
  EXPECT_NE(err.find("test: skipped bad1.png: input image 'bad1.png' cannot be decoded\n"), std::string::npos) << err;
  EXPECT_NE(err.find("test: skipped bad2.png: "), std::string::npos) << err;
  EXPECT_ERROR_CONTAINS(require_no_failed_jobs(failed, 4), "2 of 4 images failed");
  EXPECT_NO_THROW(require_no_failed_jobs(0, 4));
}

TEST(PredictionRun, OutputsAreEncodedInMemoryUnderTheirStem) {
  cv::Mat image(6, 8, CV_32FC1, cv::Scalar(0.5)), prob(6, 8, CV_32FC1, cv::Scalar(0.25));
  const cv::Mat mask = threshold_mask(prob, 0.2);
  const EncodedFiles files = encode_prediction_pngs("out/x", image, prob, mask, true);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].first, "out/x_mask.png");
  EXPECT_EQ(files[2].first, "out/x_overlay.png");
  const cv::Mat decoded = cv::imdecode(files[0].second, cv::IMREAD_UNCHANGED);
  EXPECT_EQ(decoded.at<uchar>(1, 1), 255);
  EXPECT_EQ(cv::imdecode(files[1].second, cv::IMREAD_UNCHANGED).at<uchar>(1, 1), 64);
  EXPECT_EQ(encode_prediction_pngs("x", image, prob, mask, false).size(), 2u);
}

}  // namespace
}  // namespace leanseg
