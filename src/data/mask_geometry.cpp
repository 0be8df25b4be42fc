// Geometry of binary masks: connected components, ellipse fits, outline filling (HC18).
#include "leanseg/mask_geometry.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "leanseg/error.h"

namespace leanseg {

void require_mask(const cv::Mat& mask, const std::string& what) {
  require(!mask.empty(), what + ": mask is empty (no pixels)");
  require(mask.type() == CV_8UC1, what + ": mask must be 8-bit single-channel (CV_8UC1), got type " +
                                      std::to_string(mask.type()));
}

cv::Mat largest_component(const cv::Mat& mask) {
  cv::Mat labels, stats, centroids;
  const int count = cv::connectedComponentsWithStats(mask != 0, labels, stats, centroids, 8, CV_32S);
  int best = 0;
  for (int label = 1; label < count; ++label)
    if (best == 0 || stats.at<int>(label, cv::CC_STAT_AREA) > stats.at<int>(best, cv::CC_STAT_AREA)) best = label;
  if (best == 0) return cv::Mat();
  return labels == best;
}

namespace {

bool inside_ellipse(const cv::RotatedRect& e, double margin, double x, double y) {
  const double a = e.size.width / 2.0 + margin, b = e.size.height / 2.0 + margin;
  if (a <= 0 || b <= 0) return false;
  const double t = e.angle * CV_PI / 180.0;
  const double dx = x - e.center.x, dy = y - e.center.y;
  const double u = dx * std::cos(t) + dy * std::sin(t), v = -dx * std::sin(t) + dy * std::cos(t);
  return (u * u) / (a * a) + (v * v) / (b * b) <= 1.0;
}

// Marks as wall the pixels of the one-pixel frame around the image (padded canvas) that lie
// inside an ellipse fitted to the outline. Where the annotation is cut off by the image border,
// this closes the gap along the border itself, which is exactly where the visible head ends.
void wall_off_cut_border(const cv::Mat& outline_points, cv::Mat& padded_wall) {
  if (outline_points.total() < 5) return;  // fitEllipse needs five points; nothing to close
  const cv::RotatedRect fitted = cv::fitEllipse(outline_points);
  // The outline is 2–3 px wide and the fit runs along its middle: widen it so the wall always
  // reaches the outline's ends. Extra wall outside the outline seals nothing, because the
  // outside region next to it stays connected to the rest of the outside.
  const double margin_px = 2.0;
  const int w = padded_wall.cols, h = padded_wall.rows;
  auto mark = [&](int px, int py) {
    if (inside_ellipse(fitted, margin_px, px - 1, py - 1)) padded_wall.at<uchar>(py, px) = 255;
  };
  for (int px = 0; px < w; ++px) mark(px, 0), mark(px, h - 1);
  for (int py = 1; py < h - 1; ++py) mark(0, py), mark(w - 1, py);
}

}  // namespace

double ellipse_perimeter(double a, double b) {
  require(a >= 0 && b >= 0 && std::isfinite(a) && std::isfinite(b),
          "ellipse_perimeter: semi-axes must be finite and non-negative, got a=" + std::to_string(a) +
              ", b=" + std::to_string(b));
  if (a + b == 0) return 0.0;
  const double h = ((a - b) / (a + b)) * ((a - b) / (a + b));
  return CV_PI * (a + b) * (1.0 + 3.0 * h / (10.0 + std::sqrt(4.0 - 3.0 * h)));
}

EllipseFit fit_ellipse(const cv::Mat& mask) {
  require_mask(mask, "fit_ellipse");
  EllipseFit fit;
  const cv::Mat component = largest_component(mask);
  if (component.empty()) return fit;
  std::vector<std::vector<cv::Point>> contours;
  cv::findContours(component, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
  // One component has one outer contour; take the longest in case of odd topologies.
  const auto outer = std::max_element(contours.begin(), contours.end(),
                                      [](const auto& l, const auto& r) { return l.size() < r.size(); });
  if (outer == contours.end() || outer->size() < 5) return fit;
  const cv::RotatedRect e = cv::fitEllipse(*outer);
  fit.ok = true;
  fit.cx = e.center.x;
  fit.cy = e.center.y;
  fit.semi_a = std::max(e.size.width, e.size.height) / 2.0;
  fit.semi_b = std::min(e.size.width, e.size.height) / 2.0;
  // Angle of the major axis: RotatedRect's angle belongs to its width side.
  fit.angle_deg = std::fmod(e.size.width >= e.size.height ? e.angle : e.angle + 90.0, 180.0);
  if (fit.angle_deg < 0) fit.angle_deg += 180.0;
  fit.circumference_px = ellipse_perimeter(fit.semi_a, fit.semi_b);
  return fit;
}

cv::Mat filled_ellipse(const EllipseFit& fit, cv::Size size) {
  cv::Mat filled = cv::Mat::zeros(size, CV_8UC1);
  if (!fit.ok) return filled;
  // The RotatedRect overload draws with sub-pixel coordinates; its width side is the major axis.
  const cv::RotatedRect box(cv::Point2f(static_cast<float>(fit.cx), static_cast<float>(fit.cy)),
                            cv::Size2f(static_cast<float>(2 * fit.semi_a), static_cast<float>(2 * fit.semi_b)),
                            static_cast<float>(fit.angle_deg));
  cv::ellipse(filled, box, cv::Scalar(1), cv::FILLED, cv::LINE_8);
  return filled;
}

double outline_offset_px(const cv::Mat& outline, const cv::Mat& filled) {
  require_mask(outline, "outline_offset_px (outline)");
  require_mask(filled, "outline_offset_px (filled mask)");
  std::vector<cv::Point> line;
  cv::findNonZero(outline, line);
  // A line is a small share of what it encloses; an annotation that is already a filled region
  // has no middle line to measure from.
  if (line.size() < 5 || 2 * line.size() >= static_cast<size_t>(cv::countNonZero(filled))) return 0.0;
  const EllipseFit edge = fit_ellipse(filled);
  if (!edge.ok) return 0.0;
  const cv::RotatedRect middle = cv::fitEllipse(line);
  const double middle_perimeter = ellipse_perimeter(middle.size.width / 2.0, middle.size.height / 2.0);
  return std::max(0.0, (edge.circumference_px - middle_perimeter) / (2.0 * CV_PI));
}

double reference_circumference_px(const EllipseFit& fit, double offset_px) {
  return std::max(0.0, fit.circumference_px - 2.0 * CV_PI * offset_px);
}

// Approach: flood-fill the outside from a one-pixel frame around the image; whatever the fill
// cannot reach is head. This is exact for closed outlines (no model of the shape involved).
// A plain fill leaks where the ellipse is cut off by the image border (346_HC, 628_2HC,
// 787_HC), so before filling, the frame pixels that lie inside an ellipse fitted to the outline
// become wall: the gap is closed along the image edge. The fitted ellipse only decides where
// the wall goes outside the image, so its small fitting error never changes a pixel inside a
// closed outline. (Rasterising the fitted ellipse instead would replace the annotator's pixels
// with the fit everywhere.)
cv::Mat fill_outline(const cv::Mat& outline) {
  require_mask(outline, "fill_outline");
  cv::Mat padded;
  cv::copyMakeBorder(outline != 0, padded, 1, 1, 1, 1, cv::BORDER_CONSTANT, cv::Scalar(0));
  cv::Mat outline_points;
  cv::findNonZero(outline, outline_points);
  wall_off_cut_border(outline_points, padded);
  // Seed every still-open frame pixel: a wall can split the outside into several pieces
  // (e.g. an ellipse cut off at the top and the bottom). 4-connectivity cannot slip through
  // the diagonal steps of an 8-connected outline.
  const uchar outside = 128;
  auto seed = [&](int px, int py) {
    if (padded.at<uchar>(py, px) == 0)
      cv::floodFill(padded, cv::Point(px, py), cv::Scalar(outside), nullptr, cv::Scalar(), cv::Scalar(), 4);
  };
  for (int px = 0; px < padded.cols; ++px) seed(px, 0), seed(px, padded.rows - 1);
  for (int py = 1; py < padded.rows - 1; ++py) seed(0, py), seed(padded.cols - 1, py);
  const cv::Mat head = padded(cv::Rect(1, 1, outline.cols, outline.rows)) != outside;
  cv::Mat mask;
  head.convertTo(mask, CV_8UC1, 1.0 / 255.0);
  return mask;
}

}  // namespace leanseg
