// Geometry of binary masks (CV_8UC1, 0 / non-zero): the largest connected component, ellipse fits
// (HC18 head circumference, the `ellipse` post-processing) and filling annotated outlines.
// Torch-free; the data layer's, so that readers and post-processing need no metrics.
#pragma once
#include <opencv2/core.hpp>
#include <string>

namespace leanseg {

// Throws Error naming `what` when `mask` is empty or not CV_8UC1.
void require_mask(const cv::Mat& mask, const std::string& what);

// Perimeter of an ellipse with semi-axes a, b (Ramanujan's second approximation; relative
// error < 1e-9 for the eccentricities of fetal heads).
double ellipse_perimeter(double a, double b);

struct EllipseFit {
  bool ok = false;
  double cx = 0, cy = 0;          // centre (pixels)
  double semi_a = 0, semi_b = 0;  // semi-axes (pixels), a >= b
  double angle_deg = 0;
  double circumference_px = 0;
};
// Fits an ellipse (cv::fitEllipse) to the outer contour of the largest connected component.
// ok=false when the mask has no component with ≥ 5 boundary points.
EllipseFit fit_ellipse(const cv::Mat& mask);
// The inside of a fitted ellipse rasterised at sub-pixel precision: CV_8UC1 0/1 of `size`
// (all 0 when !fit.ok).
cv::Mat filled_ellipse(const EllipseFit& fit, cv::Size size);

// How far (pixels) the edge of a mask filled from a drawn outline lies outside the curve the
// outline marks. HC18's reference HC is the ellipse through the middle of the annotators' line
// (an ellipse fitted to all its pixels matches the published HC to 0.01 mm on average), while a
// filled mask reaches the line's outer edge: its fitted ellipse is a curve parallel to the
// reference, 2π·offset longer. Measured as (perimeter of fit_ellipse(filled) − perimeter of the
// ellipse fitted to the outline's pixels) / 2π; 0 when `outline` is not a thin line around
// `filled` (a filled annotation, fewer than 5 pixels) or the fill lies inside the line's fit.
double outline_offset_px(const cv::Mat& outline, const cv::Mat& filled);
// The circumference a fit measures on the reference's curve: its perimeter less 2π·offset_px
// (Preprocessing::hc_outline_offset_px of the model), never below 0.
double reference_circumference_px(const EllipseFit& fit, double offset_px);

// The largest 8-connected component of `mask` (255 where it is, 0 elsewhere), or an empty Mat
// when the mask has no foreground.
cv::Mat largest_component(const cv::Mat& mask);

// Fills a closed outline (HC18 annotation): the inside and the outline pixels become 1.
// Works when the outline touches or is cut off by the image border (no leaking).
cv::Mat fill_outline(const cv::Mat& outline);

}  // namespace leanseg
