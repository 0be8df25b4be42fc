// Segmentation metrics on hand-made masks with known answers, plus the real HC18 annotations
// that are cut off by the image border.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "leanseg/error.h"
#include "leanseg/mask_geometry.h"
#include "leanseg/metrics.h"
#include "test_util.h"

namespace leanseg {
namespace {

cv::Mat blank(int w = 100, int h = 80) { return cv::Mat::zeros(h, w, CV_8UC1); }

// Filled axis-aligned square of side `side` with its top-left corner at (x, y), value 1.
cv::Mat square(int x, int y, int side, int w = 100, int h = 80) {
  cv::Mat m = blank(w, h);
  m(cv::Rect(x, y, side, side)) = 1;
  return m;
}

// Arc length of the ellipse x = a cos t, y = b sin t by the trapezoidal rule over a full
// period; for a smooth periodic integrand it converges exponentially fast.
double perimeter_by_integration(double a, double b, int steps = 4000) {
  double sum = 0;
  for (int i = 0; i < steps; ++i) {
    const double t = 2 * CV_PI * i / steps;
    sum += std::hypot(a * std::sin(t), b * std::cos(t));
  }
  return sum * 2 * CV_PI / steps;
}

TEST(MetricOverlap, SquaresOverlappingInHalfTheirArea) {
  // Two 10x10 squares, the second shifted 5 px right: they share a 5x10 region.
  const cv::Mat pred = square(10, 10, 10), truth = square(15, 10, 10);
  const Overlap o = overlap(pred, truth);
  EXPECT_EQ(o.tp, 50);
  EXPECT_EQ(o.fp, 50);
  EXPECT_EQ(o.fn, 50);
  EXPECT_EQ(o.tn, 100 * 80 - 150);
  EXPECT_DOUBLE_EQ(dice(pred, truth), 0.5);
  EXPECT_DOUBLE_EQ(iou(pred, truth), 50.0 / 150.0);
}

TEST(MetricOverlap, AnyNonZeroValueIsForeground) {
  // 255 and 1 must both count as foreground (bitwise AND of 1 and 254 would be 0).
  cv::Mat pred = square(10, 10, 10) * 254, truth = square(10, 10, 10);
  EXPECT_DOUBLE_EQ(dice(pred, truth), 1.0);
  EXPECT_DOUBLE_EQ(iou(pred, truth), 1.0);
}

TEST(MetricOverlap, EmptyMasks) {
  EXPECT_DOUBLE_EQ(dice(blank(), blank()), 1.0);
  EXPECT_DOUBLE_EQ(iou(blank(), blank()), 1.0);
  EXPECT_DOUBLE_EQ(dice(square(0, 0, 5), blank()), 0.0);
  EXPECT_DOUBLE_EQ(iou(blank(), square(0, 0, 5)), 0.0);
}

TEST(MetricOverlap, AccumulatesOverImages) {
  Overlap total = overlap(square(10, 10, 10), square(15, 10, 10));
  total += overlap(square(10, 10, 10), square(10, 10, 10));
  EXPECT_EQ(total.tp, 150);
  EXPECT_EQ(total.fp + total.fn, 100);
  EXPECT_DOUBLE_EQ(total.dice(), 300.0 / 400.0);
}

TEST(MetricOverlap, SizeMismatchIsAnError) {
  EXPECT_ERROR_CONTAINS(overlap(blank(100, 80), blank(80, 100)), "100x80");
  EXPECT_ERROR_CONTAINS(dice(blank(100, 80), blank(100, 81)), "100x81");
  cv::Mat float_mask = cv::Mat::zeros(80, 100, CV_32F);
  EXPECT_ERROR_CONTAINS(iou(float_mask, blank()), "CV_8UC1");
}

TEST(MetricHausdorff, SquaresShiftedBySevenPixels) {
  EXPECT_NEAR(hausdorff_px(square(10, 10, 20), square(17, 10, 20)), 7.0, 1e-4);
  EXPECT_NEAR(hausdorff_px(square(10, 10, 20), square(10, 10, 20)), 0.0, 1e-6);
}

TEST(MetricHausdorff, IsSymmetric) {
  // Small square centred in a big one. From the small boundary the farthest point is 20 px
  // away; from the big boundary's corner (20,20) the nearest small-boundary pixel is the
  // corner (40,40), sqrt(800) away. The symmetric distance is the larger one.
  const cv::Mat big = square(20, 20, 60, 100, 100), small = square(40, 40, 20, 100, 100);
  EXPECT_NEAR(hausdorff_px(big, small), std::sqrt(800.0), 1e-3);
  EXPECT_NEAR(hausdorff_px(small, big), std::sqrt(800.0), 1e-3);
}

TEST(MetricHausdorff, DiscsOffsetDiagonally) {
  // Discs of equal radius offset by (6, 8): boundaries are 10 px apart at most.
  cv::Mat a = blank(200, 200), b = blank(200, 200);
  cv::circle(a, {90, 90}, 40, 1, cv::FILLED);
  cv::circle(b, {96, 98}, 40, 1, cv::FILLED);
  EXPECT_NEAR(hausdorff_px(a, b), 10.0, 1.0);
}

TEST(MetricHausdorff, NanWhenEitherIsEmpty) {
  EXPECT_TRUE(std::isnan(hausdorff_px(blank(), square(0, 0, 5))));
  EXPECT_TRUE(std::isnan(hausdorff_px(square(0, 0, 5), blank())));
  EXPECT_ERROR_CONTAINS(hausdorff_px(blank(10, 10), blank(10, 11)), "10x11");
}

// Perimeter pixels of a filled axis-aligned square (its outer boundary).
std::vector<cv::Point> perimeter(int x, int y, int side) {
  std::vector<cv::Point> p;
  for (int i = 0; i < side; ++i)
    for (int j = 0; j < side; ++j)
      if (i == 0 || j == 0 || i == side - 1 || j == side - 1) p.emplace_back(x + i, y + j);
  return p;
}

// Brute force: every point of `from` to its nearest point of `to`.
std::vector<double> nearest(const std::vector<cv::Point>& from, const std::vector<cv::Point>& to) {
  std::vector<double> d;
  for (const auto& f : from) {
    double best = 1e300;
    for (const auto& t : to) best = std::min(best, std::hypot(f.x - t.x, f.y - t.y));
    d.push_back(best);
  }
  return d;
}

double numpy_percentile(std::vector<double> v, double q) {  // np.percentile's default (linear)
  std::sort(v.begin(), v.end());
  const double pos = q * (v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

TEST(MetricSurfaceDistances, MatchBruteForceOnNestedAndOverlappingSquares) {
  struct Case { int x1, y1, s1, x2, y2, s2; };
  for (const Case c : {Case{20, 20, 60, 40, 40, 20}, Case{10, 12, 30, 25, 20, 41}, Case{5, 5, 50, 5, 5, 50}}) {
    const auto a = perimeter(c.x1, c.y1, c.s1), b = perimeter(c.x2, c.y2, c.s2);
    const auto ab = nearest(a, b), ba = nearest(b, a);
    double sum = 0;
    for (double d : ab) sum += d;
    for (double d : ba) sum += d;
    const SurfaceDistances s = surface_distances_px(square(c.x1, c.y1, c.s1, 100, 100), square(c.x2, c.y2, c.s2, 100, 100));
    EXPECT_NEAR(s.hausdorff, std::max(*std::max_element(ab.begin(), ab.end()), *std::max_element(ba.begin(), ba.end())), 1e-3);
    EXPECT_NEAR(s.hausdorff95, std::max(numpy_percentile(ab, 0.95), numpy_percentile(ba, 0.95)), 1e-3);
    EXPECT_NEAR(s.mean, sum / (ab.size() + ba.size()), 1e-3);
  }
  // Hand-checked: every pixel of the small square's boundary is 20 px from the big one's; from
  // the big boundary 20 px along the middles of its sides, up to sqrt(800) at its corners. HD95
  // lies between, well below the Hausdorff distance: a few far corner pixels do not dominate it.
  const SurfaceDistances nested = surface_distances_px(square(20, 20, 60, 100, 100), square(40, 40, 20, 100, 100));
  EXPECT_NEAR(nested.hausdorff, std::sqrt(800.0), 1e-3);
  EXPECT_GT(nested.hausdorff95, 20.0);
  EXPECT_LT(nested.hausdorff95, nested.hausdorff - 1.0);
  EXPECT_GT(nested.mean, 20.0);
  const SurfaceDistances same = surface_distances_px(square(5, 5, 50), square(5, 5, 50));
  EXPECT_EQ(same.hausdorff, 0.0);
  EXPECT_EQ(same.hausdorff95, 0.0);
  EXPECT_EQ(same.mean, 0.0);
  EXPECT_TRUE(std::isnan(surface_distances_px(blank(), square(0, 0, 5)).hausdorff95));
}

TEST(EllipsePerimeter, CircleIsExact) {
  for (double r : {1.0, 37.5, 250.0}) EXPECT_NEAR(ellipse_perimeter(r, r), 2 * CV_PI * r, 1e-12 * r);
  EXPECT_EQ(ellipse_perimeter(0, 0), 0.0);
}

TEST(EllipsePerimeter, DegenerateIsTwiceTheDiameter) {
  // Ramanujan II gives (14/11)·π·a ≈ 3.9984·a for b = 0: within 4.1e-4 of the true 4a.
  EXPECT_NEAR(ellipse_perimeter(100, 0), 400.0, 400.0 * 4.1e-4);
  EXPECT_DOUBLE_EQ(ellipse_perimeter(100, 0), ellipse_perimeter(0, 100));
}

TEST(EllipsePerimeter, MatchesNumericalArcLength) {
  const double reference = perimeter_by_integration(100, 60);
  EXPECT_NEAR(ellipse_perimeter(100, 60) / reference, 1.0, 1e-6);
  // Fetal heads are at most this elongated; the header promises 1e-9 there.
  EXPECT_NEAR(ellipse_perimeter(250, 180) / perimeter_by_integration(250, 180), 1.0, 1e-9);
  EXPECT_THROW(ellipse_perimeter(-1, 2), Error);
}

TEST(EllipseFit, RecoversRasterisedEllipse) {
  cv::Mat mask = blank(400, 300);
  cv::ellipse(mask, {210, 140}, {120, 80}, 30, 0, 360, 1, cv::FILLED);
  const EllipseFit fit = fit_ellipse(mask);
  ASSERT_TRUE(fit.ok);
  EXPECT_NEAR(fit.cx, 210, 1.0);
  EXPECT_NEAR(fit.cy, 140, 1.0);
  EXPECT_NEAR(fit.semi_a, 120, 1.0);
  EXPECT_NEAR(fit.semi_b, 80, 1.0);
  EXPECT_NEAR(fit.angle_deg, 30, 1.0);
  const double analytic = ellipse_perimeter(120, 80);
  EXPECT_NEAR(fit.circumference_px, analytic, 0.005 * analytic);
}

TEST(EllipseFit, UsesTheLargestComponentOnly) {
  cv::Mat mask = blank(400, 300);
  cv::ellipse(mask, {210, 140}, {120, 80}, 0, 0, 360, 1, cv::FILLED);
  cv::rectangle(mask, {0, 0}, {20, 20}, 1, cv::FILLED);  // a speck far away
  const EllipseFit fit = fit_ellipse(mask);
  ASSERT_TRUE(fit.ok);
  EXPECT_NEAR(fit.cx, 210, 1.0);
  EXPECT_NEAR(fit.semi_a, 120, 1.0);
}

// HC18's reference HC is the ellipse through the middle of the drawn line; a mask filled from
// the line reaches its outer edge. Measured on the line's middle, the fill gives the drawn
// ellipse's analytic perimeter; measured on its own edge, ~1 % more (the bias this corrects).
TEST(EllipseFit, AFilledOutlineIsMeasuredOnTheLinesMiddle) {
  for (int thickness : {2, 3}) {
    cv::Mat outline = blank(400, 300);
    cv::ellipse(outline, cv::RotatedRect({210, 140}, {240, 160}, 30), 255, thickness, cv::LINE_8);
    const cv::Mat filled = fill_outline(outline);
    const double offset = outline_offset_px(outline, filled);
    EXPECT_GT(offset, 0.4) << thickness;
    EXPECT_LT(offset, 0.5 * thickness + 0.5) << thickness;
    const EllipseFit fit = fit_ellipse(filled);
    const double analytic = ellipse_perimeter(120, 80);
    EXPECT_GT(fit.circumference_px - analytic, 0.004 * analytic) << "the fill's own edge is outside the line's middle";
    EXPECT_NEAR(reference_circumference_px(fit, offset), analytic, 0.002 * analytic) << thickness;
  }
}

TEST(EllipseFit, AFilledAnnotationHasNoOutlineOffset) {
  cv::Mat filled = blank(400, 300);
  cv::ellipse(filled, {210, 140}, {120, 80}, 0, 0, 360, 1, cv::FILLED);
  EXPECT_EQ(outline_offset_px(filled, filled), 0.0);  // no thin line: nothing to take back
  EXPECT_EQ(outline_offset_px(blank(), filled), 0.0);
  const EllipseFit fit = fit_ellipse(filled);
  EXPECT_EQ(reference_circumference_px(fit, 0.0), fit.circumference_px);
  EXPECT_EQ(reference_circumference_px(fit, 1e6), 0.0);  // never negative
}

TEST(EllipseFit, NotOkOnEmptyOrTinyMasks) {
  EXPECT_FALSE(fit_ellipse(blank()).ok);
  cv::Mat dot = blank();
  dot.at<uchar>(5, 5) = 1;
  EXPECT_FALSE(fit_ellipse(dot).ok);
}

// Outline of an ellipse drawn like the HC18 annotations (255 on 0).
cv::Mat outline_image(cv::Point centre, cv::Size axes, double angle, int thickness = 2) {
  cv::Mat outline = cv::Mat::zeros(540, 800, CV_8UC1);
  cv::ellipse(outline, centre, axes, angle, 0, 360, 255, thickness);
  return outline;
}

TEST(FillOutline, ClosedOutlineInsideTheImage) {
  const cv::Mat outline = outline_image({400, 270}, {250, 180}, 20);
  const cv::Mat mask = fill_outline(outline);
  ASSERT_EQ(mask.type(), CV_8UC1);
  ASSERT_EQ(mask.size(), outline.size());
  double lo, hi;
  cv::minMaxLoc(mask, &lo, &hi);
  EXPECT_EQ(lo, 0);
  EXPECT_EQ(hi, 1);  // 0/1, not 0/255
  // The 2 px stroke reaches about 1 px beyond the drawn axes and counts as head.
  EXPECT_NEAR(cv::countNonZero(mask), CV_PI * 251 * 181, 0.02 * CV_PI * 251 * 181);
  EXPECT_EQ(cv::countNonZero(mask & (outline != 0)), cv::countNonZero(outline));  // outline is head
  EXPECT_EQ(mask.at<uchar>(270, 400), 1);
  EXPECT_EQ(mask.at<uchar>(0, 0), 0);
}

// The filled ellipse clipped to the image, plus its outline: what a correct fill must give.
cv::Mat clipped_reference(const cv::Mat& outline, const cv::RotatedRect& ellipse) {
  cv::Mat reference = cv::Mat::zeros(outline.size(), CV_8UC1);
  cv::ellipse(reference, ellipse, 255, cv::FILLED);
  return reference | outline;
}
cv::Mat clipped_reference(const cv::Mat& outline, cv::Point centre, cv::Size axes, double angle) {
  cv::Mat reference = cv::Mat::zeros(outline.size(), CV_8UC1);
  cv::ellipse(reference, centre, axes, angle, 0, 360, 255, cv::FILLED);
  return reference | outline;
}

TEST(FillOutline, OutlineCutOffByTheTopBorderDoesNotLeak) {
  const cv::Point centre{400, 150};
  const cv::Size axes{250, 180};
  const cv::Mat outline = outline_image(centre, axes, 10);
  ASSERT_GT(cv::countNonZero(outline.row(0)), 0) << "test setup: the outline should be cut off";
  const cv::Mat mask = fill_outline(outline);
  const double expected = cv::countNonZero(clipped_reference(outline, centre, axes, 10));
  EXPECT_NEAR(cv::countNonZero(mask), expected, 0.03 * expected);
  EXPECT_EQ(mask.at<uchar>(0, 400), 1);    // head touching the border
  EXPECT_EQ(mask.at<uchar>(539, 0), 0);    // outside stays outside
  EXPECT_EQ(mask.at<uchar>(0, 0), 0);
}

TEST(FillOutline, OutlineCutOffAtTopAndBottom) {
  // Cut on two sides: the outside falls apart into a left and a right piece.
  const cv::Point centre{400, 270};
  const cv::Size axes{200, 300};
  const cv::Mat outline = outline_image(centre, axes, 0);
  const cv::Mat mask = fill_outline(outline);
  const double expected = cv::countNonZero(clipped_reference(outline, centre, axes, 0));
  EXPECT_NEAR(cv::countNonZero(mask), expected, 0.03 * expected);
  EXPECT_EQ(mask.at<uchar>(270, 10), 0);
  EXPECT_EQ(mask.at<uchar>(270, 790), 0);
  EXPECT_EQ(mask.at<uchar>(0, 400), 1);
  EXPECT_EQ(mask.at<uchar>(539, 400), 1);
}

TEST(FillOutline, OutlineCutOffInACorner) {
  const cv::Point centre{60, 50};
  const cv::Size axes{220, 160};
  const cv::Mat outline = outline_image(centre, axes, 15, 3);
  const cv::Mat mask = fill_outline(outline);
  const double expected = cv::countNonZero(clipped_reference(outline, centre, axes, 15));
  EXPECT_NEAR(cv::countNonZero(mask), expected, 0.03 * expected);
  EXPECT_EQ(mask.at<uchar>(0, 0), 1);
  EXPECT_EQ(mask.at<uchar>(539, 799), 0);
}

TEST(FillOutline, RealHc18AnnotationsCutOffByTheBorder) {
  const std::string dir = test::shared_dir() + "/data/hc18/training_set";
  if (!std::filesystem::exists(dir + "/346_HC_Annotation.png"))
    GTEST_SKIP() << "HC18 not found under " << dir;
  for (const char* id : {"346_HC", "628_2HC", "787_HC"}) {
    SCOPED_TRACE(id);
    const cv::Mat outline = cv::imread(dir + "/" + id + "_Annotation.png", cv::IMREAD_GRAYSCALE);
    ASSERT_FALSE(outline.empty());
    const cv::Mat mask = fill_outline(outline);
    const int filled = cv::countNonZero(mask), outline_px = cv::countNonZero(outline);
    EXPECT_LT(filled, 0.6 * static_cast<double>(mask.total()));  // no leak into the background
    EXPECT_GT(filled, 5 * outline_px);                            // the inside was filled
    // Independent reference: an ellipse fitted to the outline pixels, rasterised and clipped.
    std::vector<cv::Point> outline_points;
    cv::findNonZero(outline, outline_points);
    const cv::Mat reference = clipped_reference(outline, cv::fitEllipse(outline_points));
    EXPECT_LT(cv::countNonZero(reference != (mask * 255)), 0.01 * filled);
  }
}

}  // namespace
}  // namespace leanseg
