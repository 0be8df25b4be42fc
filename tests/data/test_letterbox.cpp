// Letterbox resizing (data.h letterbox_*, prediction.h predict_probability_with, preprocessing.h
// "resize"): the pad geometry, the prediction round trip that drops the padding, and model files
// without the key (stretch, as before).
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "leanseg/prediction.h"
#include "leanseg/preprocessing.h"
#include "test_util.h"

namespace leanseg {
namespace {

TEST(Letterbox, NonSquareImageGetsExactPadGeometry) {
  // 40 wide x 20 high into 32 x 32: scale 0.8, content 32 x 16 centred: rows 8..23.
  const Letterbox wide = letterbox_geometry(20, 40, 32, 32);
  EXPECT_EQ(wide.content, cv::Rect(0, 8, 32, 16));
  // 30 wide x 50 high into 64 x 64: scale 1.28, content 38 (38.4 rounded) x 64, left (64 - 38) / 2 = 13.
  EXPECT_EQ(letterbox_geometry(50, 30, 64, 64).content, cv::Rect(13, 0, 38, 64));
  EXPECT_EQ(letterbox_geometry(64, 64, 32, 32).content, cv::Rect(0, 0, 32, 32));  // square: no padding

  const cv::Mat image(20, 40, CV_32FC1, cv::Scalar(0.6));
  const cv::Mat boxed = letterbox_image(image, 32, 32);
  ASSERT_EQ(boxed.size(), cv::Size(32, 32));
  EXPECT_EQ(cv::countNonZero(boxed(cv::Rect(0, 0, 32, 8))), 0);   // top band
  EXPECT_EQ(cv::countNonZero(boxed(cv::Rect(0, 24, 32, 8))), 0);  // bottom band
  cv::Mat off;
  cv::absdiff(boxed(cv::Rect(0, 8, 32, 16)), cv::Scalar(0.6), off);
  EXPECT_LT(cv::norm(off, cv::NORM_INF), 1e-6);  // the content, all of it
  const cv::Mat mask = letterbox_mask(cv::Mat(20, 40, CV_8UC1, cv::Scalar(2)), 32, 32);
  EXPECT_EQ(cv::countNonZero(mask == 2), 32 * 16);
  EXPECT_EQ(cv::countNonZero(mask == 0), 32 * 16);
}

// A "network" that answers 1 on the content and 0 on the zero padding (it sees the image, where
// every pixel is 0.6): after the round trip every pixel of the original size must be 1, which
// fails if the padding were resized back in with the image.
TEST(Letterbox, PredictionRoundTripReturnsTheOriginalSizeWithoutThePadding) {
  Preprocessing pre;
  pre.input_height = pre.input_width = 32;
  pre.resize = "letterbox";
  const cv::Mat image(20, 40, CV_32FC1, cv::Scalar(0.6));
  cv::Size seen;
  const ProbabilityFn net = [&](const cv::Mat& in) {
    seen = in.size();
    cv::Mat p;
    cv::threshold(in, p, 0.3, 1.0, cv::THRESH_BINARY);
    return p;
  };
  const cv::Mat prob = predict_probability_with(pre, 32, image, net);
  EXPECT_EQ(seen, cv::Size(32, 32));
  ASSERT_EQ(prob.size(), image.size());
  double lo = 0, hi = 0;
  cv::minMaxLoc(prob, &lo, &hi);
  EXPECT_FLOAT_EQ(static_cast<float>(lo), 1.0f);
  EXPECT_FLOAT_EQ(static_cast<float>(hi), 1.0f);
  // Stretching (the default) has no padding either, but a letterbox output read as stretched
  // would carry the bands: 8 of 32 rows at the top are 0 in the model's output.
  pre.resize = "stretch";
  cv::Mat bands(32, 32, CV_32FC1, cv::Scalar(1));
  bands(cv::Rect(0, 0, 32, 8)).setTo(0);
  const cv::Mat stretched = predict_probability_with(pre, 32, image, [&](const cv::Mat&) { return bands.clone(); });
  EXPECT_LT(stretched.at<float>(0, 0), 0.5f);
  EXPECT_FLOAT_EQ(unletterbox(bands, image.size()).at<float>(0, 0), 1.0f);
}

TEST(Letterbox, ModelFilesWithoutTheKeyStretchAndTheKeyIsWrittenOnlyWhenSet) {
  Preprocessing stretch;
  const nlohmann::json old = stretch.to_json();
  EXPECT_FALSE(old.contains("resize"));  // files as before
  EXPECT_EQ(Preprocessing::from_json(old, "old file").resize, "stretch");
  Preprocessing box = stretch;
  box.resize = "letterbox";
  EXPECT_EQ(box.to_json().at("resize"), "letterbox");
  EXPECT_EQ(Preprocessing::from_json(box.to_json(), "file").resize, "letterbox");
  nlohmann::json bad = box.to_json();
  bad["resize"] = "crop";
  EXPECT_ERROR_CONTAINS(Preprocessing::from_json(bad, "model 'm.lsr'"), "model 'm.lsr': resize must be stretch or letterbox");
}

// The outline offset (where HC is measured) rides in the model file: absent (0) in older files,
// written when set, refused outside [0, 16] px with the file named.
TEST(Preprocessing, HcOutlineOffsetIsWrittenOnlyWhenSetAndChecked) {
  Preprocessing pre;
  EXPECT_FALSE(pre.to_json().contains("hc_outline_offset_px"));
  EXPECT_EQ(Preprocessing::from_json(pre.to_json(), "old file").hc_outline_offset_px, 0.0);
  pre.hc_outline_offset_px = 0.807;
  EXPECT_EQ(Preprocessing::from_json(pre.to_json(), "file").hc_outline_offset_px, 0.807);
  for (double bad : {-0.5, 17.0}) {
    nlohmann::json j = pre.to_json();
    j["hc_outline_offset_px"] = bad;
    EXPECT_ERROR_CONTAINS(Preprocessing::from_json(j, "model 'm.safetensors'"),
                          "model 'm.safetensors': hc_outline_offset_px must be in [0, 16] pixels");
  }
  nlohmann::json text = pre.to_json();
  text["hc_outline_offset_px"] = "0.8";
  EXPECT_ERROR_CONTAINS(Preprocessing::from_json(text, "m"), "preprocessing field 'hc_outline_offset_px' has the wrong type");
}

}  // namespace
}  // namespace leanseg
