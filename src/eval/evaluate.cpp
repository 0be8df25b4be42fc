#include "leanseg/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>

#include "leanseg/error.h"
#include "leanseg/inference.h"
#include "leanseg/info.h"
#include "leanseg/metrics.h"
#include "leanseg/stats.h"

namespace leanseg {
namespace {

double mean(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  double s = 0;
  for (double x : v) s += x;
  return s / v.size();
}

cv::Mat predict_mask(const Predictor& p, const cv::Mat& image) {
  const cv::Mat prob = predict_probability_with(p.pre, p.size_divisor, image, p.run);
  const int channels = p.num_classes == 2 ? 1 : p.num_classes;
  require(prob.channels() == channels, "evaluation: the network gives " + std::to_string(prob.channels()) +
                                           " probability channels, expected " + std::to_string(channels));
  return postprocess_mask(segmentation_mask(prob, p.pre.threshold), p.postprocess, p.num_classes);
}

// Dice, IoU and surface distances of every foreground class of label maps; the image's scores
// are their means (distances over the classes where they are defined).
void score_classes(const cv::Mat& pred, const cv::Mat& truth, int num_classes, double scale, ImageScore& r,
                   std::vector<Overlap>& totals) {
  const std::vector<Overlap> per_class = class_overlaps(pred, truth, num_classes);
  std::vector<double> hd, hd95, assd;
  for (int c = 1; c < num_classes; ++c) {
    totals[static_cast<size_t>(c - 1)] += per_class[static_cast<size_t>(c)];
    const SurfaceDistances d = surface_distances_px(pred == c, truth == c);
    r.classes.push_back({per_class[static_cast<size_t>(c)].dice(), per_class[static_cast<size_t>(c)].iou(), d.hausdorff95 * scale});
    if (std::isfinite(d.hausdorff)) hd.push_back(d.hausdorff * scale), hd95.push_back(d.hausdorff95 * scale), assd.push_back(d.mean * scale);
  }
  r.dice = mean_foreground_dice(per_class), r.iou = mean_foreground_iou(per_class);
  r.hd = mean(hd), r.hd95 = mean(hd95), r.assd = mean(assd);
}

ImageScore score_image(const Predictor& p, const Sample& s, Overlap& total, std::vector<Overlap>& class_totals,
                       const Predictor* reference, int64_t& agreeing_pixels) {
  ImageScore r;
  r.id = s.id;
  const auto t0 = std::chrono::steady_clock::now();
  const cv::Mat pred = predict_mask(p, s.image);
  r.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (reference) agreeing_pixels += static_cast<int64_t>(pred.total()) - cv::countNonZero(pred != predict_mask(*reference, s.image));
  const double scale = s.pixel_size_mm > 0 ? s.pixel_size_mm : 1.0;
  if (p.num_classes > 2) {
    score_classes(pred, s.mask, p.num_classes, scale, r, class_totals);
    return r;
  }
  const Overlap ov = overlap(pred, s.mask);
  total += ov;
  r.dice = ov.dice();
  r.iou = ov.iou();
  const SurfaceDistances d = surface_distances_px(pred, s.mask);
  r.hd = d.hausdorff * scale, r.hd95 = d.hausdorff95 * scale, r.assd = d.mean * scale;
  if (s.pixel_size_mm > 0 && s.hc_mm > 0) {
    r.has_hc = true;
    r.hc_ref_mm = s.hc_mm;
    const EllipseFit fit = fit_ellipse(pred);
    // no head found: error = HC
    r.hc_pred_mm = fit.ok ? reference_circumference_px(fit, p.pre.hc_outline_offset_px) * s.pixel_size_mm : 0.0;
    r.hc_abs_err_mm = std::abs(r.hc_pred_mm - r.hc_ref_mm);
  }
  return r;
}

// Per-class means over the images, and the pixel-level scores of all images together.
void class_means(EvalReport& rep, const std::vector<Overlap>& totals) {
  double dice_pixels = 0, iou_pixels = 0;
  for (size_t c = 0; c < totals.size(); ++c) {
    std::vector<double> dice, iou, hd95;
    for (const auto& im : rep.images) {
      dice.push_back(im.classes[c].dice), iou.push_back(im.classes[c].iou);
      if (std::isfinite(im.classes[c].hd95)) hd95.push_back(im.classes[c].hd95);
    }
    rep.classes.push_back({mean(dice), mean(iou), mean(hd95)});
    rep.class_dice_pixels.push_back(totals[c].dice());
    dice_pixels += totals[c].dice(), iou_pixels += totals[c].iou();
  }
  rep.dice_pixels = dice_pixels / static_cast<double>(totals.size());
  rep.iou_pixels = iou_pixels / static_cast<double>(totals.size());
}

}  // namespace

// The network on one (already sized) image; prediction.h's pipeline does resize/pad/tile.
Predictor libtorch_predictor(const LoadedModel& m) {
  Predictor p;
  p.pre = m.preprocessing;
  p.size_divisor = m.model->size_divisor();
  p.run = libtorch_probability_fn(m.model, m.preprocessing);
  p.num_classes = m.model->config().num_classes;
  return p;
}

EvalReport evaluate(const LoadedModel& m, const Dataset& data, const std::vector<size_t>& indices) {
  EvalReport rep = evaluate_predictor(libtorch_predictor(m), data, indices);
  const ParamCounts c = count_params(*m.model);
  rep.params_total = c.total, rep.params_nonzero = c.nonzero;
  rep.flops = summarize(m.model, m.preprocessing.input_height, m.preprocessing.input_width).flops;
  return rep;
}

EvalReport evaluate_predictor(const Predictor& p, const Dataset& data, const std::vector<size_t>& indices,
                              const Predictor* reference) {
  std::vector<size_t> idx = indices;
  if (idx.empty())
    for (size_t i = 0; i < data.samples.size(); ++i) idx.push_back(i);
  require(data.num_classes == p.num_classes,
          "evaluation: the model segments " + std::to_string(p.num_classes) + " classes but the " + data.kind +
              " dataset's masks have " + std::to_string(data.num_classes));
  EvalReport rep;
  rep.postprocess = p.postprocess;
  rep.num_classes = p.num_classes;
  Overlap total;
  std::vector<Overlap> class_totals(static_cast<size_t>(std::max(0, p.num_classes - 1)));
  int64_t agreeing = 0, pixels = 0;
  std::vector<double> dices, ious, hds, hd95s, assds, hc_errs, lat;
  for (size_t i : idx) {
    ImageScore r = score_image(p, data.samples[i], total, class_totals, reference, agreeing);
    pixels += static_cast<int64_t>(data.samples[i].image.total());
    dices.push_back(r.dice), ious.push_back(r.iou), lat.push_back(r.latency_ms);
    if (std::isfinite(r.hd)) hds.push_back(r.hd), hd95s.push_back(r.hd95), assds.push_back(r.assd);
    if (r.has_hc) hc_errs.push_back(r.hc_abs_err_mm);
    rep.images.push_back(r);
  }
  rep.n_images = static_cast<int>(idx.size());
  rep.dice = mean(dices), rep.iou = mean(ious);
  rep.dice_pixels = total.dice(), rep.iou_pixels = total.iou();
  if (p.num_classes > 2) class_means(rep, class_totals);
  rep.hd_mm = mean(hds), rep.hd95_mm = mean(hd95s), rep.assd_mm = mean(assds);
  rep.hc_mae_mm = mean(hc_errs), rep.hc_median_mm = percentile(hc_errs, 0.5);
  rep.hc_outline_offset_px = p.pre.hc_outline_offset_px;
  rep.latency_median_ms = percentile(lat, 0.5), rep.latency_p90_ms = percentile(lat, 0.9);
  if (reference && pixels > 0) rep.mask_agreement = static_cast<double>(agreeing) / pixels;
  rep.peak_rss_bytes = peak_rss_bytes();
  return rep;
}

nlohmann::json EvalReport::to_json(bool per_image) const {
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  nlohmann::json j = {{"n_images", n_images}, {"dice", num(dice)}, {"iou", num(iou)},
                      {"dice_pixels", num(dice_pixels)}, {"iou_pixels", num(iou_pixels)},
                      {"hc_mae_mm", num(hc_mae_mm)}, {"hc_median_abs_err_mm", num(hc_median_mm)},
                      {"hd_mm", num(hd_mm)}, {"hd95_mm", num(hd95_mm)}, {"assd_mm", num(assd_mm)}, {"latency_median_ms", num(latency_median_ms)},
                      {"latency_p90_ms", num(latency_p90_ms)}, {"params_total", params_total},
                      {"params_nonzero", params_nonzero}, {"flops", flops}, {"file_bytes", file_bytes},
                      {"peak_rss_bytes", peak_rss_bytes}, {"mask_agreement", num(mask_agreement)}, {"tta", tta}, {"postprocess", postprocess}};
  auto class_json = [&](const std::vector<ClassScore>& scores, const std::vector<double>* dice_pixels) {
    nlohmann::json c = nlohmann::json::object();
    for (size_t i = 0; i < scores.size(); ++i) {
      nlohmann::json e = {{"dice", num(scores[i].dice)}, {"iou", num(scores[i].iou)}, {"hd95", num(scores[i].hd95)}};
      if (dice_pixels) e["dice_pixels"] = num((*dice_pixels)[i]);
      c[std::to_string(i + 1)] = e;
    }
    return c;
  };
  if (std::isfinite(hc_mae_mm)) j["hc_outline_offset_px"] = hc_outline_offset_px;
  if (num_classes > 2) {
    j["num_classes"] = num_classes;
    j["classes"] = class_json(classes, &class_dice_pixels);
  }
  if (per_image) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : images) {
      nlohmann::json e = {{"id", r.id}, {"dice", r.dice}, {"iou", r.iou}, {"hd", num(r.hd)}, {"hd95", num(r.hd95)}, {"assd", num(r.assd)},
                          {"latency_ms", r.latency_ms}};
      if (!r.classes.empty()) e["classes"] = class_json(r.classes, nullptr);
      if (r.has_hc) e.update({{"hc_pred_mm", r.hc_pred_mm}, {"hc_ref_mm", r.hc_ref_mm}, {"hc_abs_err_mm", r.hc_abs_err_mm}});
      arr.push_back(e);
    }
    j["images"] = arr;
  }
  return j;
}

}  // namespace leanseg
