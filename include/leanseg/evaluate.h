// Dataset evaluation (E1): overlap metrics at the original image size, HC18 head circumference
// and Hausdorff distance in mm, plus model cost (params, FLOPs, file size, memory, latency).
#pragma once
#include <string>
#include <vector>

#include "leanseg/data.h"
#include "leanseg/model_file.h"
#include "leanseg/prediction.h"
#include "leanseg/stats.h"  // peak_rss_bytes

namespace leanseg {

// One foreground class of a multi-class model on one image, or its mean over images.
struct ClassScore {
  double dice = 0, iou = 0, hd95 = 0;  // hd95 as ImageScore's; NaN when either mask of the class is empty
};

struct ImageScore {
  std::string id;
  // Multi-class models: the means over the foreground classes of `classes` (hd, hd95, assd
  // over those with both masks non-empty).
  double dice = 0, iou = 0;
  std::vector<ClassScore> classes;  // multi-class models: classes 1..K-1 (index 0 is class 1)
  double hd = 0, hd95 = 0, assd = 0;  // surface distances (metrics.h): mm when the pixel size is known, else pixels
  double hc_pred_mm = 0, hc_ref_mm = 0, hc_abs_err_mm = 0;
  bool has_hc = false;
  double latency_ms = 0;
};

struct EvalReport {
  int n_images = 0;
  int num_classes = 2;
  // Multi-class models: per foreground class 1..K-1, the means over images (hd95 over the images
  // where it is defined) and, in class_pixels, Dice over all pixels; dice/iou below are their
  // means over classes. JSON: "classes": {"1": {"dice", "iou", "hd95", "dice_pixels"}, ...}.
  std::vector<ClassScore> classes;
  std::vector<double> class_dice_pixels;
  double dice = 0, iou = 0;              // mean over images
  double dice_pixels = 0, iou_pixels = 0;  // over all pixels of the set
  double hc_mae_mm = 0, hc_median_mm = 0;  // NaN when not applicable
  // Where HC was measured: this many pixels inside each mask's fitted ellipse (the model's
  // Preprocessing::hc_outline_offset_px; 0: on the mask's own edge).
  double hc_outline_offset_px = 0;
  double hd_mm = 0, hd95_mm = 0, assd_mm = 0;  // means over images with both masks non-empty; px without a pixel size
  double latency_median_ms = 0, latency_p90_ms = 0;
  double mask_agreement = std::nan("");  // fraction of pixels where the reference model's mask agrees
  int64_t params_total = 0, params_nonzero = 0;
  double flops = 0;
  std::string tta = "none";          // test-time mirroring the predictor used (prediction.h)
  std::string postprocess = "none";  // mask post-processing it used (postprocess_mask)
  int64_t file_bytes = 0, peak_rss_bytes = 0;
  std::vector<ImageScore> images;
  nlohmann::json to_json(bool per_image) const;
};

// A network with the input pipeline it expects: LibTorch (a model file) or the runtime (.lsr).
struct Predictor {
  ProbabilityFn run;
  Preprocessing pre;
  int size_divisor = 32;
  std::string postprocess = "none";  // applied to each thresholded mask (postprocess_mask)
  int num_classes = 2;  // 2: one probability channel thresholded; K: K channels, argmax
};
Predictor libtorch_predictor(const LoadedModel& model);

// Scores `predictor` on data.samples[indices] (all samples when indices is empty). With a
// `reference`, also the share of pixels where both masks agree (e.g. int8 vs fp32). Model cost
// fields (params, FLOPs, file size) are left for the caller.
EvalReport evaluate_predictor(const Predictor& predictor, const Dataset& data, const std::vector<size_t>& indices = {},
                              const Predictor* reference = nullptr);
// A self-contained HTML page of an evaluation (`leanseg eval --report report.html`): the summary,
// the per-image table (sortable by any column; Dice ascending at first), and an overlay gallery
// of the `gallery_size` worst images by Dice (ground truth blue, prediction green; the masks are
// predicted again with `predictor`), images inlined as base64 PNGs: no other file, no network.
// `indices` are the evaluated samples, in the order of rep.images. A "Curves" section holds
// gnuplot PNGs (inlined too): the per-image Dice sorted (their distribution) and, when
// `training_metrics` names a run's metrics.json, loss and validation Dice per epoch.
std::string evaluation_report_html(const EvalReport& rep, const Dataset& data, const std::vector<size_t>& indices,
                                   const Predictor& predictor, const std::string& title, int gallery_size = 24,
                                   const std::string& training_metrics = "");

// evaluate_predictor on a LibTorch model, with its params and FLOPs.
EvalReport evaluate(const LoadedModel& model, const Dataset& data, const std::vector<size_t>& indices = {});

}  // namespace leanseg
