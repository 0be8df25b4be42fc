// `leanseg-infer MODEL.lsr IMAGE... --out DIR`: the same input pipeline and outputs as
// `leanseg predict` (prediction.h), with the oneDNN engine in place of LibTorch. Built as the
// plugin libleanseg-infer-images.so (OpenCV's codecs), loaded by leanseg-infer on demand.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <opencv2/core.hpp>

#include "infer.h"
#include "leanseg/data.h"
#include "leanseg/error.h"
#include "leanseg/prediction.h"
#include "leanseg/preprocessing.h"

namespace leanseg::infer {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The files read for one job: a single file serves every channel (as in `leanseg predict`).
std::vector<std::string> job_paths(const std::vector<std::string>& job, const Preprocessing& pre) {
  const size_t channels = pre.channels.size();
  require(job.size() == 1 || job.size() == channels,
          "'" + job[0] + "...' gives " + std::to_string(job.size()) + " files, the model takes " +
              std::to_string(channels) + " channel" + (channels == 1 ? "" : "s") +
              " (one file, or one file per channel joined with '+')");
  return job.size() == 1 ? std::vector<std::string>(channels, job[0]) : job;
}

// Everything that can be checked without decoding is checked before any output is written, so
// a typo in the last file name does not leave the first images' results behind.
void check_jobs(const std::vector<std::vector<std::string>>& jobs, const Preprocessing& pre) {
  std::map<std::string, std::string> stems;  // output stem → input that claims it
  for (const auto& job : jobs) {
    for (const auto& path : job_paths(job, pre)) {
      std::error_code ec;
      require(fs::is_regular_file(path, ec), "input image '" + path + "' does not exist");
    }
    const std::string stem = fs::path(job[0]).stem().string();
    const auto [it, fresh] = stems.emplace(stem, job[0]);
    require(fresh, "inputs '" + it->second + "' and '" + job[0] + "' would both write " + stem +
                       "_mask.png; rename one of them");
  }
}

struct ImageResult {
  int width = 0, height = 0;
  double foreground = 0, ms = 0;
  std::vector<std::pair<std::string, std::vector<unsigned char>>> files;  // path → PNG bytes
};

// Segments one image; every output is encoded in memory first, so a failure leaves no files.
ImageResult segment_one(runtime::Engine& engine, const Preprocessing& pre, int divisor,
                        const std::vector<std::string>& job, const Options& o) {
  const cv::Mat image = read_input_image(job_paths(job, pre), pre.channels, pre.intensity, pre.max_value);
  const auto start = Clock::now();
  const ProbabilityFn network = mirrored_probability_fn(engine_probability_fn(engine, pre), o.tta);
  const cv::Mat prob = predict_probability_with(pre, divisor, image, network);
  const cv::Mat mask = threshold_mask(prob, pre.threshold);
  ImageResult r;
  r.ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  r.width = image.cols, r.height = image.rows;
  r.foreground = static_cast<double>(cv::countNonZero(mask)) / mask.total();
  const std::string stem = (fs::path(o.out) / fs::path(job[0]).stem()).string();
  cv::Mat prob8;
  prob.convertTo(prob8, CV_8U, 255.0);
  r.files.emplace_back(stem + "_mask.png", encode_png(mask * 255, stem + "_mask.png"));
  r.files.emplace_back(stem + "_prob.png", encode_png(prob8, stem + "_prob.png"));
  if (o.overlay) r.files.emplace_back(stem + "_overlay.png", encode_png(overlay_image(image, mask), stem + "_overlay.png"));
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
  const auto jobs = expand_image_inputs(o.images);
  runtime::Engine engine = load_engine(o);
  const Preprocessing pre = model_preprocessing(engine, o.model);
  check_jobs(jobs, pre);
  fs::create_directories(o.out);
  for (const auto& job : jobs) {
    ImageResult r;
    try {
      r = segment_one(engine, pre, engine.model().size_divisor, job, o);
    } catch (const std::exception& e) {
      throw Error(naming(e.what(), "input image", job[0]));
    }
    for (const auto& [path, bytes] : r.files) write_bytes(path, bytes);
    std::printf("%s: %dx%d, foreground %.2f%%, %.1f ms\n", job[0].c_str(), r.width, r.height, 100.0 * r.foreground,
                r.ms);
    std::fflush(stdout);
  }
}

}  // namespace leanseg::infer

// The plugin's entry point (looked up by name with dlsym).
extern "C" void leanseg_infer_segment_images(const leanseg::infer::Options& o) { leanseg::infer::segment_images(o); }
