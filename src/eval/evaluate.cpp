#include "leanseg/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>

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
  return postprocess_mask(threshold_mask(predict_probability_with(p.pre, p.size_divisor, image, p.run), p.pre.threshold),
                          p.postprocess);
}

ImageScore score_image(const Predictor& p, const Sample& s, Overlap& total, const Predictor* reference,
                       int64_t& agreeing_pixels) {
  ImageScore r;
  r.id = s.id;
  const auto t0 = std::chrono::steady_clock::now();
  const cv::Mat pred = predict_mask(p, s.image);
  r.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (reference) agreeing_pixels += static_cast<int64_t>(pred.total()) - cv::countNonZero(pred != predict_mask(*reference, s.image));
  const Overlap ov = overlap(pred, s.mask);
  total += ov;
  r.dice = ov.dice();
  r.iou = ov.iou();
  const double scale = s.pixel_size_mm > 0 ? s.pixel_size_mm : 1.0;
  const SurfaceDistances d = surface_distances_px(pred, s.mask);
  r.hd = d.hausdorff * scale, r.hd95 = d.hausdorff95 * scale, r.assd = d.mean * scale;
  if (s.pixel_size_mm > 0 && s.hc_mm > 0) {
    r.has_hc = true;
    r.hc_ref_mm = s.hc_mm;
    const EllipseFit fit = fit_ellipse(pred);
    r.hc_pred_mm = fit.ok ? fit.circumference_px * s.pixel_size_mm : 0.0;  // no head found: error = HC
    r.hc_abs_err_mm = std::abs(r.hc_pred_mm - r.hc_ref_mm);
  }
  return r;
}

}  // namespace

// The network on one (already sized) image; prediction.h's pipeline does resize/pad/tile.
Predictor libtorch_predictor(const LoadedModel& m) {
  Predictor p;
  p.pre = m.preprocessing;
  p.size_divisor = m.model->size_divisor();
  p.run = libtorch_probability_fn(m.model, m.preprocessing);
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
  EvalReport rep;
  rep.postprocess = p.postprocess;
  Overlap total;
  int64_t agreeing = 0, pixels = 0;
  std::vector<double> dices, ious, hds, hd95s, assds, hc_errs, lat;
  for (size_t i : idx) {
    ImageScore r = score_image(p, data.samples[i], total, reference, agreeing);
    pixels += static_cast<int64_t>(data.samples[i].image.total());
    dices.push_back(r.dice), ious.push_back(r.iou), lat.push_back(r.latency_ms);
    if (std::isfinite(r.hd)) hds.push_back(r.hd), hd95s.push_back(r.hd95), assds.push_back(r.assd);
    if (r.has_hc) hc_errs.push_back(r.hc_abs_err_mm);
    rep.images.push_back(r);
  }
  rep.n_images = static_cast<int>(idx.size());
  rep.dice = mean(dices), rep.iou = mean(ious);
  rep.dice_pixels = total.dice(), rep.iou_pixels = total.iou();
  rep.hd_mm = mean(hds), rep.hd95_mm = mean(hd95s), rep.assd_mm = mean(assds);
  rep.hc_mae_mm = mean(hc_errs), rep.hc_median_mm = percentile(hc_errs, 0.5);
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
  if (per_image) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : images) {
      nlohmann::json e = {{"id", r.id}, {"dice", r.dice}, {"iou", r.iou}, {"hd", num(r.hd)}, {"hd95", num(r.hd95)}, {"assd", num(r.assd)},
                          {"latency_ms", r.latency_ms}};
      if (r.has_hc) e.update({{"hc_pred_mm", r.hc_pred_mm}, {"hc_ref_mm", r.hc_ref_mm}, {"hc_abs_err_mm", r.hc_abs_err_mm}});
      arr.push_back(e);
    }
    j["images"] = arr;
  }
  return j;
}

}  // namespace leanseg
