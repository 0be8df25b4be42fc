// Where `leanseg eval` measures head circumference: on the drawn line's middle, as HC18's
// reference is, using the outline offset the model file carries (Preprocessing).
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "leanseg/data.h"
#include "leanseg/evaluate.h"
#include "leanseg/mask_geometry.h"
#include "leanseg/train.h"
#include "test_util.h"

namespace leanseg {
namespace {

// One HC18-like sample: a 3-px ellipse line filled into the mask, the reference HC that of the
// line's middle (the drawn ellipse), the image the mask itself.
Sample outlined_head(const std::string& id) {
  cv::Mat outline = cv::Mat::zeros(300, 400, CV_8UC1);
  cv::ellipse(outline, cv::RotatedRect({210, 140}, {240, 160}, 30), 255, 3, cv::LINE_8);
  Sample s;
  s.id = s.group = id;
  s.mask = (fill_outline(outline) != 0) / 255;  // 0/1, as the readers give
  s.mask.convertTo(s.image, CV_32FC1);
  s.pixel_size_mm = 0.1;
  s.hc_mm = ellipse_perimeter(120, 80) * s.pixel_size_mm;
  s.outline_offset_px = outline_offset_px(outline, s.mask);
  return s;
}

// A predictor that returns the image as the probability: it predicts the filled mask exactly.
Predictor perfect_predictor(double offset_px) {
  Predictor p;
  p.run = [](const cv::Mat& image) { return image.clone(); };
  p.pre.input_height = 300, p.pre.input_width = 400;
  p.pre.hc_outline_offset_px = offset_px;
  return p;
}

TEST(EvaluateHc, APerfectMaskMeasuredOnTheLinesMiddleHasNoHcError) {
  Dataset data;
  data.kind = "hc18";
  data.channels = {"gray"};
  data.samples = {outlined_head("001")};
  const double offset = data.samples[0].outline_offset_px;
  ASSERT_GT(offset, 0.4);
  const EvalReport on_edge = evaluate_predictor(perfect_predictor(0.0), data);
  const EvalReport on_middle = evaluate_predictor(perfect_predictor(offset), data);
  EXPECT_NEAR(on_edge.dice, 1.0, 1e-12);
  const double hc = data.samples[0].hc_mm;
  EXPECT_GT(on_edge.hc_mae_mm, 0.004 * hc) << "a file without the offset measures the fill's edge, as before";
  EXPECT_LT(on_middle.hc_mae_mm, 0.002 * hc);
  EXPECT_NEAR(on_edge.images[0].hc_pred_mm - on_middle.images[0].hc_pred_mm, 2 * M_PI * offset * 0.1, 1e-9);
  EXPECT_EQ(on_middle.to_json(false).at("hc_outline_offset_px"), offset);  // the report says where HC was measured
  EXPECT_EQ(on_edge.to_json(false).at("hc_outline_offset_px"), 0.0);
}

// The offset recorded for a model is the training images' median: the validation images'
// annotations never set it.
TEST(EvaluateHc, TheModelsOffsetIsTheTrainingImagesMedian) {
  Dataset data;
  data.channels = {"gray"};
  for (double offset : {0.7, 0.9, 0.8, 5.0, 0.0}) {
    Sample s;
    s.outline_offset_px = offset;
    data.samples.push_back(s);
  }
  TrainOptions o;
  EXPECT_EQ(preprocessing_for(o, data, {0, 1, 2}).hc_outline_offset_px, 0.8);
  EXPECT_EQ(preprocessing_for(o, data, {0, 1, 2, 4}).hc_outline_offset_px, 0.8) << "unmeasured images do not count";
  EXPECT_EQ(preprocessing_for(o, data, {4}).hc_outline_offset_px, 0.0) << "no outlines: HC on the mask's own edge";
}

}  // namespace
}  // namespace leanseg
