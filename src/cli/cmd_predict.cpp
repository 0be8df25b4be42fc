// `leanseg predict --model FILE INPUT... --out DIR [--overlay] [--pixel-size MM] [--tta none|h|hv] [--postprocess P] [--skip-errors]`: masks,
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
#include "data/shard.h"

namespace leanseg::cli {
namespace fs = std::filesystem;
namespace {

struct PredictArgs {
  std::string model, out, tta = "none", postprocess = "none", shard;
  std::vector<std::string> inputs;
  bool overlay = false, skip_errors = false, skip_existing = false;
  double pixel_size = 0;
};

// Segments one image: its PNGs (encoded first, so a failure writes none) and its JSON entry.
nlohmann::json predict_one(const PredictArgs& a, const LoadedModel& m, const ProbabilityFn& run,
                           const std::vector<std::string>& job) {
  const auto& pre = m.preprocessing;
  const cv::Mat image = read_input_image(job_files(job, pre.channels.size()), pre.channels, pre.intensity, pre.max_value);
  const cv::Mat prob = predict_probability_with(pre, m.model->size_divisor(), image, run);
  const cv::Mat mask = postprocess_mask(threshold_mask(prob, pre.threshold), a.postprocess);
  const std::string stem = (fs::path(a.out) / fs::path(job[0]).stem()).string();
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
  const ShardSpec shard = a.shard.empty() ? ShardSpec{} : parse_shard(a.shard);
  const LoadedModel m = load_model(a.model);
  const ProbabilityFn run = mirrored_probability_fn(libtorch_probability_fn(m.model, m.preprocessing), a.tta);
  const auto jobs = expand_image_inputs(a.inputs);
  check_prediction_jobs(jobs, m.preprocessing.channels.size());
  fs::create_directories(a.out);
  const PredictionRunOptions run_options{a.out, "leanseg predict", shard, a.skip_existing, a.skip_errors};
  const size_t failed = run_prediction_jobs(jobs, run_options, [&](const PredictionJob& job) { return predict_one(a, m, run, job); });
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
  cmd->add_option("--shard", a->shard,
                  "I/N: only the images whose file name hashes to shard I of N (0 <= I < N; N array jobs cover the "
                  "inputs once); writes OUT/shard-I-of-N.json instead of predictions.json (`leanseg merge-shards`)");
  cmd->add_flag("--skip-existing", a->skip_existing,
                "Skip images whose OUT/<stem>_prediction.json exists (written after their images): a re-run resumes");
  add_tta_option(cmd, a->tta);
  add_postprocess_option(cmd, a->postprocess);
  cmd->add_option("--pixel-size", a->pixel_size, "mm per pixel: report the head circumference in mm")->check(CLI::PositiveNumber);
  cmd->callback([a] { run_predict(*a); });
}

// `leanseg merge-shards --out DIR --shards N [INPUT...]`: the step after N `--shard I/N` jobs.
void add_merge_shards(CLI::App& app) {
  struct MergeArgs {
    std::string out;
    size_t shards = 0;
    std::vector<std::string> inputs;
  };
  auto a = std::make_shared<MergeArgs>();
  auto* cmd = app.add_subcommand("merge-shards",
                                 "Check that the N shard jobs of `predict`/`leanseg-infer --shard I/N` into one folder all "
                                 "finished, and write its predictions.json");
  cmd->add_option("--out", a->out, "The shards' output folder")->required();
  cmd->add_option("--shards", a->shards, "N of --shard I/N")->required()->check(CLI::PositiveNumber);
  cmd->add_option("inputs", a->inputs, "The images or folders the shards were given: checks each is in exactly one shard");
  cmd->callback([a] {
    const auto expected = a->inputs.empty() ? std::vector<PredictionJob>{} : expand_image_inputs(a->inputs);
    const nlohmann::json all = merge_prediction_shards(a->out, a->shards, expected);
    std::cout << "merged " << a->shards << " shards: " << all.size() << " images -> "
              << (fs::path(a->out) / "predictions.json").string() << "\n";
  });
}

}  // namespace leanseg::cli
