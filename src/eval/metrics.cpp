#include "leanseg/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "leanseg/error.h"
#include "leanseg/stats.h"

namespace leanseg {

namespace {

std::string size_text(const cv::Mat& m) { return std::to_string(m.cols) + "x" + std::to_string(m.rows); }

void require_mask(const cv::Mat& mask, const std::string& what) {
  require(!mask.empty(), what + ": mask is empty (no pixels)");
  require(mask.type() == CV_8UC1, what + ": mask must be 8-bit single-channel (CV_8UC1), got type " +
                                      std::to_string(mask.type()));
}

void require_same_size(const cv::Mat& pred, const cv::Mat& truth, const std::string& what) {
  require_mask(pred, what + " (prediction)");
  require_mask(truth, what + " (ground truth)");
  require(pred.size() == truth.size(),
          what + ": prediction is " + size_text(pred) + " but ground truth is " + size_text(truth));
}

// 255 on the pixels of the outer contours of `mask` (holes ignored), 0 elsewhere.
cv::Mat outer_boundary(const cv::Mat& mask) {
  std::vector<std::vector<cv::Point>> contours;
  cv::findContours(mask != 0, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
  cv::Mat boundary = cv::Mat::zeros(mask.size(), CV_8UC1);
  for (const auto& contour : contours)
    for (const cv::Point& p : contour) boundary.at<uchar>(p) = 255;
  return boundary;
}

// For every `from` boundary pixel, the Euclidean distance to the nearest `to` boundary pixel.
std::vector<double> directed_distances(const cv::Mat& from, const cv::Mat& to) {
  cv::Mat distance_to_boundary;
  // distanceTransform measures the distance to the nearest zero pixel, so the boundary is zeroed.
  cv::distanceTransform(to == 0, distance_to_boundary, cv::DIST_L2, cv::DIST_MASK_PRECISE, CV_32F);
  std::vector<double> d;
  for (int y = 0; y < from.rows; ++y) {
    const uchar* f = from.ptr<uchar>(y);
    const float* dist = distance_to_boundary.ptr<float>(y);
    for (int x = 0; x < from.cols; ++x)
      if (f[x]) d.push_back(dist[x]);
  }
  return d;
}

}  // namespace

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

Overlap& Overlap::operator+=(const Overlap& o) {
  tp += o.tp, fp += o.fp, fn += o.fn, tn += o.tn;
  return *this;
}

double Overlap::dice() const {
  const int64_t denominator = 2 * tp + fp + fn;
  return denominator == 0 ? 1.0 : 2.0 * static_cast<double>(tp) / static_cast<double>(denominator);
}

double Overlap::iou() const {
  const int64_t union_px = tp + fp + fn;
  return union_px == 0 ? 1.0 : static_cast<double>(tp) / static_cast<double>(union_px);
}

Overlap overlap(const cv::Mat& pred, const cv::Mat& truth) {
  require_same_size(pred, truth, "overlap");
  Overlap o;
  for (int y = 0; y < pred.rows; ++y) {
    const uchar* p = pred.ptr<uchar>(y);
    const uchar* t = truth.ptr<uchar>(y);
    for (int x = 0; x < pred.cols; ++x) {
      const bool predicted = p[x] != 0, actual = t[x] != 0;
      if (predicted && actual) ++o.tp;
      else if (predicted) ++o.fp;
      else if (actual) ++o.fn;
      else ++o.tn;
    }
  }
  return o;
}

std::vector<Overlap> class_overlaps(const cv::Mat& pred, const cv::Mat& truth, int num_classes) {
  require_same_size(pred, truth, "class overlap");
  require(num_classes >= 2 && num_classes <= 256, "class overlap: number of classes must be in [2, 256], got " +
                                                      std::to_string(num_classes));
  // counts[p][t]: pixels predicted p whose truth is t (a confusion matrix).
  std::vector<int64_t> counts(static_cast<size_t>(num_classes) * num_classes, 0);
  for (int y = 0; y < pred.rows; ++y) {
    const uchar* p = pred.ptr<uchar>(y);
    const uchar* t = truth.ptr<uchar>(y);
    for (int x = 0; x < pred.cols; ++x) {
      require(p[x] < num_classes && t[x] < num_classes,
              "class overlap: label " + std::to_string(std::max(p[x], t[x])) + " is not below the number of classes " +
                  std::to_string(num_classes));
      ++counts[static_cast<size_t>(p[x]) * num_classes + t[x]];
    }
  }
  const int64_t total = static_cast<int64_t>(pred.total());
  std::vector<Overlap> out(static_cast<size_t>(num_classes));
  for (int c = 0; c < num_classes; ++c) {
    Overlap& o = out[static_cast<size_t>(c)];
    int64_t predicted = 0, actual = 0;
    for (int other = 0; other < num_classes; ++other) {
      predicted += counts[static_cast<size_t>(c) * num_classes + other];
      actual += counts[static_cast<size_t>(other) * num_classes + c];
    }
    o.tp = counts[static_cast<size_t>(c) * num_classes + c];
    o.fp = predicted - o.tp;
    o.fn = actual - o.tp;
    o.tn = total - o.tp - o.fp - o.fn;
  }
  return out;
}

namespace {
double mean_over_foreground(const std::vector<Overlap>& per_class, double (Overlap::*score)() const) {
  require(per_class.size() >= 2, "mean over foreground classes: needs at least 2 classes");
  double sum = 0;
  for (size_t c = 1; c < per_class.size(); ++c) sum += (per_class[c].*score)();
  return sum / static_cast<double>(per_class.size() - 1);
}
}  // namespace

double mean_foreground_dice(const std::vector<Overlap>& per_class) { return mean_over_foreground(per_class, &Overlap::dice); }
double mean_foreground_iou(const std::vector<Overlap>& per_class) { return mean_over_foreground(per_class, &Overlap::iou); }

double dice(const cv::Mat& pred, const cv::Mat& truth) { return overlap(pred, truth).dice(); }
double iou(const cv::Mat& pred, const cv::Mat& truth) { return overlap(pred, truth).iou(); }

SurfaceDistances surface_distances_px(const cv::Mat& pred, const cv::Mat& truth) {
  require_same_size(pred, truth, "surface distances");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (cv::countNonZero(pred) == 0 || cv::countNonZero(truth) == 0) return {nan, nan, nan};
  const cv::Mat pred_boundary = outer_boundary(pred), truth_boundary = outer_boundary(truth);
  const std::vector<double> a = directed_distances(pred_boundary, truth_boundary);
  const std::vector<double> b = directed_distances(truth_boundary, pred_boundary);
  SurfaceDistances s;
  s.hausdorff = std::max(*std::max_element(a.begin(), a.end()), *std::max_element(b.begin(), b.end()));
  s.hausdorff95 = std::max(percentile(a, 0.95), percentile(b, 0.95));
  double sum = 0;
  for (double d : a) sum += d;
  for (double d : b) sum += d;
  s.mean = sum / static_cast<double>(a.size() + b.size());
  return s;
}

double hausdorff_px(const cv::Mat& pred, const cv::Mat& truth) { return surface_distances_px(pred, truth).hausdorff; }

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
