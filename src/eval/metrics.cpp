#include "leanseg/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <opencv2/imgproc.hpp>

#include "leanseg/error.h"
#include "leanseg/mask_geometry.h"
#include "leanseg/stats.h"

namespace leanseg {

namespace {

std::string size_text(const cv::Mat& m) { return std::to_string(m.cols) + "x" + std::to_string(m.rows); }

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


}  // namespace leanseg
