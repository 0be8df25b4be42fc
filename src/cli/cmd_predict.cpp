// `leanseg predict --model FILE INPUT... --out DIR [--overlay] [--pixel-size MM] [--tta none|h|hv] [--postprocess P] [--skip-errors]`: masks,
// probability maps, overlays (contour on the image) and the head circumference in mm; for
// multi-class models label maps, per-class probability maps and coloured overlays.
#include <filesystem>
#include <iostream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "cli_common.h"
#include "commands.h"
#include "leanseg/error.h"
#include "leanseg/fs.h"
#include "leanseg/inference.h"
#include "leanseg/metrics.h"
#include "leanseg/model_file.h"
#include "leanseg/prediction.h"

namespace leanseg::cli {
namespace fs = std::filesystem;
namespace {

struct PredictArgs {
  std::string model, out, tta = "none", postprocess = "none";
  std::vector<std::string> inputs;
  bool overlay = false, skip_errors = false;
  double pixel_size = 0;
};

// Segments one image: its PNGs (encoded first, so a failure writes none) and its JSON entry.
nlohmann::json predict_one(const PredictArgs& a, const LoadedModel& m, const ProbabilityFn& run,
                           const std::vector<std::string>& job) {
  const auto& pre = m.preprocessing;
  const cv::Mat image = read_input_image(job_files(job, pre.channels.size()), pre.channels, pre.intensity, pre.max_value);
  const cv::Mat prob = predict_probability_with(pre, m.model->size_divisor(), image, run);
  const int num_classes = m.model->config().num_classes;
  const cv::Mat mask = postprocess_mask(segmentation_mask(prob, pre.threshold), a.postprocess, num_classes);
  const std::string stem = (fs::path(a.out) / fs::path(job[0]).stem()).string();
  if (num_classes > 2) {  // label map, class probabilities, coloured overlay
    nlohmann::json r = {{"input", job}, {"labels", stem + "_labels.png"}, {"foreground_pixels", cv::countNonZero(mask)}};
    nlohmann::json pixels = nlohmann::json::object();
    for (int c = 1; c < num_classes; ++c) pixels[std::to_string(c)] = cv::countNonZero(mask == c);
    r["class_pixels"] = pixels;
    write_files(encode_prediction_pngs(stem, image, prob, mask, a.overlay));
    std::cout << job[0] << ": class pixels " << pixels.dump() << "\n";
    return r;
  }
  nlohmann::json r = {{"input", job}, {"mask", stem + "_mask.png"}, {"foreground_pixels", cv::countNonZero(mask)}};
  EllipseFit fit = fit_ellipse(mask);
  if (fit.ok) {
    r["ellipse"] = {{"cx", fit.cx}, {"cy", fit.cy}, {"semi_a_px", fit.semi_a}, {"semi_b_px", fit.semi_b}, {"angle_deg", fit.angle_deg}};
    r["hc_px"] = fit.circumference_px;
    if (a.pixel_size > 0) r["hc_mm"] = fit.circumference_px * a.pixel_size;
  }
  write_files(encode_prediction_pngs(stem, image, prob, mask, a.overlay, a.pixel_size > 0 ? &fit : nullptr));
  std::cout << job[0] << ": " << r.value("foreground_pixels", 0) << " foreground px";
  if (r.contains("hc_mm")) std::cout << ", HC " << r["hc_mm"].get<double>() << " mm";
  std::cout << "\n";
  return r;
}

void run_predict(const PredictArgs& a) {
  const LoadedModel m = load_model(a.model);
  const ProbabilityFn run = mirrored_probability_fn(libtorch_probability_fn(m.model, m.preprocessing), a.tta);
  const auto jobs = expand_image_inputs(a.inputs);
  check_prediction_jobs(jobs, m.preprocessing.channels.size());
  fs::create_directories(a.out);
  nlohmann::json results = nlohmann::json::array();
  const size_t failed = for_each_job(jobs, a.skip_errors, "leanseg predict", [&](const std::vector<std::string>& job) {
    results.push_back(predict_one(a, m, run, job));
  });
  atomic_write((fs::path(a.out) / "predictions.json").string(), [&](std::ostream& o) { o << results.dump(2) << "\n"; });
  require_no_failed_jobs(failed, jobs.size());
}

}  // namespace

void add_predict(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  auto* cmd = app.add_subcommand("predict", "Segment images: mask and probability PNGs, overlays, HC in mm");
  cmd->add_option("--model,-m", a->model, "Model file")->required();
  cmd->add_option("inputs", a->inputs, "Images or folders (a.tif+b.tif for multi-channel models)")->required();
  cmd->add_option("--out", a->out, "Output folder")->required();
  cmd->add_flag("--overlay", a->overlay, "Also write the contour drawn on the image");
  cmd->add_flag("--skip-errors", a->skip_errors,
                "Report an image that fails (file and reason) and go on with the others; predictions.json lists "
                "the images written; exits 1 if any failed");
  add_tta_option(cmd, a->tta);
  add_postprocess_option(cmd, a->postprocess);
  cmd->add_option("--pixel-size", a->pixel_size, "mm per pixel: report the head circumference in mm")->check(CLI::PositiveNumber);
  cmd->callback([a] { run_predict(*a); });
}

}  // namespace leanseg::cli
