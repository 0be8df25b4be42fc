// `leanseg predict --model FILE INPUT... --out DIR [--overlay] [--pixel-size MM] [--tta none|h|hv]`: masks,
// probability maps, overlays (contour on the image) and the head circumference in mm.
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
  std::string model, out, tta = "none";
  std::vector<std::string> inputs;
  bool overlay = false;
  double pixel_size = 0;
};

void run_predict(const PredictArgs& a) {
  const LoadedModel m = load_model(a.model);
  const auto& pre = m.preprocessing;
  const ProbabilityFn run = mirrored_probability_fn(libtorch_probability_fn(m.model, pre), a.tta);
  fs::create_directories(a.out);
  nlohmann::json results = nlohmann::json::array();
  for (const auto& job : expand_image_inputs(a.inputs)) {
    require(job.size() == 1 || job.size() == pre.channels.size(),
            "predict: '" + job[0] + "...' gives " + std::to_string(job.size()) + " files, the model takes " +
                std::to_string(pre.channels.size()) + " channels (join files with '+')");
    std::vector<std::string> paths = job;
    if (paths.size() == 1 && pre.channels.size() > 1) paths.assign(pre.channels.size(), job[0]);
    const cv::Mat image = read_input_image(paths, pre.channels, pre.intensity, pre.max_value);
    const cv::Mat prob = predict_probability_with(pre, m.model->size_divisor(), image, run);
    const cv::Mat mask = threshold_mask(prob, pre.threshold);
    const std::string stem = (fs::path(a.out) / fs::path(job[0]).stem()).string();
    cv::Mat prob8;
    prob.convertTo(prob8, CV_8U, 255.0);
    write_png(stem + "_mask.png", mask * 255);
    write_png(stem + "_prob.png", prob8);
    nlohmann::json r = {{"input", job}, {"mask", stem + "_mask.png"}, {"foreground_pixels", cv::countNonZero(mask)}};
    EllipseFit fit = fit_ellipse(mask);
    if (fit.ok) {
      r["ellipse"] = {{"cx", fit.cx}, {"cy", fit.cy}, {"semi_a_px", fit.semi_a}, {"semi_b_px", fit.semi_b}, {"angle_deg", fit.angle_deg}};
      r["hc_px"] = fit.circumference_px;
      if (a.pixel_size > 0) r["hc_mm"] = fit.circumference_px * a.pixel_size;
    }
    if (a.overlay) write_png(stem + "_overlay.png", overlay_image(image, mask, a.pixel_size > 0 ? &fit : nullptr));
    std::cout << job[0] << ": " << r.value("foreground_pixels", 0) << " foreground px";
    if (r.contains("hc_mm")) std::cout << ", HC " << r["hc_mm"].get<double>() << " mm";
    std::cout << "\n";
    results.push_back(r);
  }
  atomic_write((fs::path(a.out) / "predictions.json").string(), [&](std::ostream& o) { o << results.dump(2) << "\n"; });
}

}  // namespace

void add_predict(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  auto* cmd = app.add_subcommand("predict", "Segment images: mask and probability PNGs, overlays, HC in mm");
  cmd->add_option("--model,-m", a->model, "Model file")->required();
  cmd->add_option("inputs", a->inputs, "Images or folders (a.tif+b.tif for multi-channel models)")->required();
  cmd->add_option("--out", a->out, "Output folder")->required();
  cmd->add_flag("--overlay", a->overlay, "Also write the contour drawn on the image");
  add_tta_option(cmd, a->tta);
  cmd->add_option("--pixel-size", a->pixel_size, "mm per pixel: report the head circumference in mm")->check(CLI::PositiveNumber);
  cmd->callback([a] { run_predict(*a); });
}

}  // namespace leanseg::cli
