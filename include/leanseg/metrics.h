// Segmentation metrics (E1) on binary masks (CV_8UC1, 0 / non-zero) and on label maps
// (CV_8UC1 class indices). Torch-free. Mask geometry (components, ellipses): mask_geometry.h.
#pragma once
#include <cstdint>
#include <opencv2/core.hpp>
#include <vector>

namespace leanseg {

struct Overlap {
  int64_t tp = 0, fp = 0, fn = 0, tn = 0;
  Overlap& operator+=(const Overlap& o);
  // Both empty → 1 (perfect agreement on "nothing there").
  double dice() const;
  double iou() const;
};
// Throws Error if the sizes differ.
Overlap overlap(const cv::Mat& pred, const cv::Mat& truth);
double dice(const cv::Mat& pred, const cv::Mat& truth);
// Label maps of `num_classes` classes: element c is the overlap of (pred == c) with (truth == c).
// Throws Error if the sizes differ or a label is >= num_classes.
std::vector<Overlap> class_overlaps(const cv::Mat& pred, const cv::Mat& truth, int num_classes);
// Means of Dice / IoU over the foreground classes 1..K-1 of class_overlaps (a class absent from
// both maps scores 1).
double mean_foreground_dice(const std::vector<Overlap>& per_class);
double mean_foreground_iou(const std::vector<Overlap>& per_class);
double iou(const cv::Mat& pred, const cv::Mat& truth);

// Distances in pixels between the boundaries (outer contours) of two masks, MONAI's definitions:
// Hausdorff = the larger of the two directed maxima; HD95 = the larger of the two directed 95th
// percentiles (linear interpolation, as numpy); ASSD = the mean over the distances from every
// boundary pixel of each mask to the other's boundary. NaN when either mask is empty.
struct SurfaceDistances {
  double hausdorff = 0, hausdorff95 = 0, mean = 0;
};
SurfaceDistances surface_distances_px(const cv::Mat& pred, const cv::Mat& truth);
double hausdorff_px(const cv::Mat& pred, const cv::Mat& truth);  // surface_distances_px(...).hausdorff

}  // namespace leanseg
