// `leanseg-infer MODEL.lsr IMAGE... --out DIR`: the same input pipeline and outputs as
// `leanseg predict` (prediction.h), with the oneDNN engine in place of LibTorch. Built as the
// plugin libleanseg-infer-images.so (OpenCV's codecs), loaded by leanseg-infer on demand.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "infer.h"
#include "leanseg/data.h"
#include "leanseg/error.h"
#include "leanseg/fs.h"
#include "leanseg/mask_geometry.h"
#include "leanseg/prediction.h"
#include "leanseg/preprocessing.h"
#include "data/shard.h"
#include "util/cli_conventions.h"

namespace leanseg::infer {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct ImageResult {
  int width = 0, height = 0, foreground_pixels = 0;
  double foreground = 0, ms = 0;
  std::string mask_file;
  EllipseFit fit;  // the mask's fitted ellipse: HC in pixels (and mm with --pixel-size)
  EncodedFiles files;
};

// Segments one image; every output is encoded in memory first, so a failure leaves no files.
ImageResult segment_one(runtime::Engine& engine, const Preprocessing& pre, int divisor,
                        const std::vector<std::string>& job, const Options& o) {
  ImageReadOptions read;
  read.page = o.page, read.channel = o.channel;
  read.intensity_range =
      o.intensity_range.empty() ? pre.intensity_range : parse_intensity_range(o.intensity_range, "--intensity-range");
  const cv::Mat image = read_input_image(job_files(job, pre.channels.size()), pre.channels, pre.intensity, pre.max_value, read);
  const auto start = Clock::now();
  const ProbabilityFn network = mirrored_probability_fn(engine_probability_fn(engine, pre), o.tta);
  const cv::Mat prob = predict_probability_with(pre, divisor, image, network);
  const int num_classes = prob.channels() == 1 ? 2 : prob.channels();
  const cv::Mat mask = postprocess_mask(segmentation_mask(prob, pre.threshold), o.postprocess, num_classes);
  ImageResult r;
  r.ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  r.width = image.cols, r.height = image.rows;
  r.foreground_pixels = cv::countNonZero(mask);
  r.foreground = static_cast<double>(r.foreground_pixels) / mask.total();
  const std::string stem = (fs::path(o.out) / fs::path(job[0]).stem()).string();
  r.mask_file = stem + (num_classes > 2 ? "_labels.png" : "_mask.png");
  r.fit = fit_ellipse(mask);
  r.files = encode_prediction_pngs(stem, image, prob, mask, o.overlay, o.pixel_size > 0 ? &r.fit : nullptr);
  return r;
}

}  // namespace

Preprocessing model_preprocessing(const runtime::Engine& engine, const std::string& path) {
  const std::string where = "runtime model '" + path + "'";
  const Preprocessing pre = Preprocessing::from_json(engine.model().preprocessing, where);
  require(engine.input_channels() == static_cast<int>(pre.channels.size()),
          where + ": its preprocessing lists " + std::to_string(pre.channels.size()) +
              " input channels but its graph takes " + std::to_string(engine.input_channels()));
  return pre;
}

void segment_images(const Options& o) {
  require(!o.images.empty(), "no input images (give image files, folders, or --bench)");
  require(!o.out.empty(), "--out is required to segment images");
  const ShardSpec shard =
      o.shard.empty() ? ShardSpec{} : cli_conventions::as_usage_error([&] { return parse_shard(o.shard); });
  const auto jobs = expand_image_inputs(o.images);
  runtime::Engine engine = load_engine(o);
  const Preprocessing pre = model_preprocessing(engine, o.model);
  check_prediction_jobs(jobs, pre.channels.size());
  fs::create_directories(o.out);
  // predictions.json (or the shard's manifest) lists the images written (as `leanseg predict`
  // does), so a --skip-errors run over a folder says which images have outputs.
  const PredictionRunOptions run_options{o.out, "leanseg-infer", shard, o.skip_existing, o.skip_errors};
  const size_t failed = run_prediction_jobs(jobs, run_options, [&](const PredictionJob& job) {
    const ImageResult r = segment_one(engine, pre, engine.model().size_divisor, job, o);
    write_files(r.files);
    nlohmann::json entry = {{"input", job}, {"mask", r.mask_file}, {"width", r.width}, {"height", r.height},
                            {"foreground_pixels", r.foreground_pixels}, {"ms", r.ms}};
    std::string hc;  // as `leanseg predict` reports it
    if (r.fit.ok) {
      const double hc_px = reference_circumference_px(r.fit, pre.hc_outline_offset_px);
      entry["hc_px"] = hc_px;
      const double pixel_size = o.pixel_size > 0 ? o.pixel_size : image_pixel_size_mm(job[0]);  // else DICOM's
      if (pixel_size > 0) {
        entry["hc_mm"] = hc_px * pixel_size;
        hc = ", HC " + std::to_string(entry["hc_mm"].get<double>()) + " mm";
      }
    }
    std::printf("%s: %dx%d, foreground %.2f%%%s, %.1f ms\n", job[0].c_str(), r.width, r.height, 100.0 * r.foreground,
                hc.c_str(), r.ms);
    std::fflush(stdout);
    return entry;
  });
  require_no_failed_jobs(failed, jobs.size());
}

}  // namespace leanseg::infer

// The plugin's entry point (looked up by name with dlsym).
extern "C" void leanseg_infer_segment_images(const leanseg::infer::Options& o) { leanseg::infer::segment_images(o); }
