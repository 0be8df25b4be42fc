// `leanseg predict --model FILE|MODEL.lsr INPUT... --out DIR [--format png,tiff16,geojson] [--overlay] [--pixel-size MM]
//  [--tta none|h|hv] [--postprocess P] [--skip-errors] [--precision P]`: masks, probability maps, overlays (contour
// on the image), 16-bit label TIFFs, GeoJSON outlines and the head circumference in mm; for
// multi-class models label maps, per-class probability maps and coloured overlays.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "cli_common.h"
#include "commands.h"
#include "leanseg/error.h"
#include "leanseg/evaluate.h"
#include "leanseg/fs.h"
#include "leanseg/inference.h"
#include "leanseg/mask_geometry.h"
#include "leanseg/model_file.h"
#include "leanseg/prediction.h"
#include "data/shard.h"

namespace leanseg::cli {
namespace fs = std::filesystem;
namespace {

struct PredictArgs {
  std::string model, out, tta = "none", postprocess = "none", precision = "fp32", shard;
  std::vector<std::string> inputs, formats = {"png"};
  bool overlay = false, skip_errors = false, skip_existing = false, winograd = runtime::winograd_is_fast_on_this_cpu();
  double pixel_size = 0;
  ImageReadArgs read;  // --page, --channel, --intensity-range
};

bool wants(const PredictArgs& a, const std::string& format) {
  return std::find(a.formats.begin(), a.formats.end(), format) != a.formats.end();
}

// Segments one image: its files (encoded first, so a failure writes none) and its JSON entry.
nlohmann::json predict_one(const PredictArgs& a, const Predictor& net, const std::vector<std::string>& job) {
  const auto& pre = net.pre;
  const cv::Mat image = read_input_image(job_files(job, pre.channels.size()), pre.channels, pre.intensity, pre.max_value,
                                         image_read_options(a.read, pre.intensity_range));
  const cv::Mat prob = predict_probability_with(pre, net.size_divisor, image, net.run);
  const int num_classes = net.num_classes;
  const cv::Mat mask = postprocess_mask(segmentation_mask(prob, pre.threshold), a.postprocess, num_classes);
  const std::string stem = (fs::path(a.out) / fs::path(job[0]).stem()).string();
  if (num_classes > 2) {  // label map, class probabilities, coloured overlay; 16-bit class labels
    require(!wants(a, "geojson"), "--format geojson writes object outlines of binary masks; a " +
                                      std::to_string(num_classes) + "-class model writes label maps (png, tiff16)");
    nlohmann::json r = {{"input", job}, {"foreground_pixels", cv::countNonZero(mask)}};
    nlohmann::json pixels = nlohmann::json::object();
    for (int c = 1; c < num_classes; ++c) pixels[std::to_string(c)] = cv::countNonZero(mask == c);
    r["class_pixels"] = pixels;
    EncodedFiles files;
    if (wants(a, "png")) {
      files = encode_prediction_pngs(stem, image, prob, mask, a.overlay);
      r["labels"] = stem + "_labels.png";
    }
    if (wants(a, "tiff16")) {  // label = class index (0 background), as napari/Fiji label layers take it
      const std::string path = stem + "_labels.tif";
      cv::Mat labels;
      mask.convertTo(labels, CV_16U);
      files.emplace_back(path, encode_tiff(labels, path));
      r["labels_tiff"] = path;
    }
    write_files(files);
    std::cout << job[0] << ": class pixels " << pixels.dump() << "\n";
    return r;
  }
  nlohmann::json r = {{"input", job}, {"foreground_pixels", cv::countNonZero(mask)}};
  EllipseFit fit = fit_ellipse(mask);
  // --pixel-size, else the file's own (DICOM header), else none.
  const double pixel_size = a.pixel_size > 0 ? a.pixel_size : image_pixel_size_mm(job[0]);
  if (pixel_size > 0) r["pixel_size_mm"] = pixel_size;
  if (fit.ok) {
    r["ellipse"] = {{"cx", fit.cx}, {"cy", fit.cy}, {"semi_a_px", fit.semi_a}, {"semi_b_px", fit.semi_b}, {"angle_deg", fit.angle_deg}};
    const double hc_px = reference_circumference_px(fit, pre.hc_outline_offset_px);
    r["hc_px"] = hc_px;
    if (pixel_size > 0) r["hc_mm"] = hc_px * pixel_size;
  }
  EncodedFiles files;
  if (wants(a, "png")) {
    files = encode_prediction_pngs(stem, image, prob, mask, a.overlay, pixel_size > 0 ? &fit : nullptr);
    r["mask"] = stem + "_mask.png";
  }
  if (wants(a, "tiff16")) {
    const std::string path = stem + "_labels.tif";
    const cv::Mat labels = object_labels16(mask, path);
    double objects = 0;
    cv::minMaxLoc(labels, nullptr, &objects);
    files.emplace_back(path, encode_tiff(labels, path));
    r["labels"] = path;
    r["objects"] = static_cast<int>(objects);
  }
  if (wants(a, "geojson")) {
    const std::string path = stem + ".geojson", text = mask_geojson(mask).dump() + "\n";
    files.emplace_back(path, std::vector<unsigned char>(text.begin(), text.end()));
    r["geojson"] = path;
  }
  write_files(files);
  std::cout << job[0] << ": " << r.value("foreground_pixels", 0) << " foreground px";
  if (r.contains("hc_mm")) std::cout << ", HC " << r["hc_mm"].get<double>() << " mm";
  std::cout << "\n";
  return r;
}

// A model file on LibTorch, or an exported .lsr file on the LibTorch-free engine.
Predictor open_predictor(const PredictArgs& a, bool winograd_given) {
  if (is_runtime_file(a.model)) return runtime_predictor(a.model, a.precision, a.winograd);
  require_usage(a.precision == "fp32" && !winograd_given,
                "--precision and --winograd/--no-winograd select the runtime's kernels: they need an exported .lsr model "
                "(leanseg export --format runtime), got '" + a.model + "'");
  return libtorch_predictor(load_model(a.model));
}

void run_predict(const PredictArgs& a, bool winograd_given) {
  require_usage(!a.formats.empty(), "--format: give png, tiff16 and/or geojson");
  require_usage(!a.overlay || wants(a, "png"), "--overlay writes a PNG: it needs --format png");
  const ShardSpec shard =
      a.shard.empty() ? ShardSpec{} : cli_conventions::as_usage_error([&] { return parse_shard(a.shard); });
  Predictor net = open_predictor(a, winograd_given);
  net.run = mirrored_probability_fn(std::move(net.run), a.tta);
  const auto jobs = expand_image_inputs(a.inputs);
  check_prediction_jobs(jobs, net.pre.channels.size());
  fs::create_directories(a.out);
  const PredictionRunOptions run_options{a.out, "leanseg predict", shard, a.skip_existing, a.skip_errors};
  const size_t failed = run_prediction_jobs(jobs, run_options, [&](const PredictionJob& job) { return predict_one(a, net, job); });
  require_no_failed_jobs(failed, jobs.size());
}

}  // namespace

void add_predict(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  auto* cmd = app.add_subcommand("predict", "Segment images: mask and probability PNGs, overlays, HC in mm");
  add_model_option(cmd, a->model, ModelArg::FileOrRuntime)->required();
  cmd->add_option("inputs", a->inputs, "Images or folders (a.tif+b.tif for multi-channel models)")->required();
  cli_conventions::add_out_option(*cmd, a->out, "Output folder")->required();
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
  add_image_read_options(cmd, a->read);
  cmd->add_option("--pixel-size", a->pixel_size,
                  "mm per pixel: report the head circumference in mm (default: the DICOM header's pixel spacing)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--format", a->formats,
                  "Outputs, comma-separated: png (mask, probability, --overlay), tiff16 (<stem>_labels.tif, 16-bit, for "
                  "napari/Fiji: binary models number the mask's objects 1..N (8-connected); K-class models write the "
                  "class index, 0 = background), geojson (<stem>.geojson: outlines for QuPath; binary models)")
      ->delimiter(',')
      ->check(CLI::IsMember(prediction_format_names()))
      ->capture_default_str();
  cmd->add_option("--precision", a->precision, ".lsr only: fp32, bf16 or int8 (int8 needs a calibrated export)")
      ->check(CLI::IsMember({"fp32", "bf16", "int8"}))
      ->capture_default_str();
  auto* winograd = cmd->add_flag("--winograd,!--no-winograd", a->winograd,
                                 ".lsr at fp32: the Winograd kernel for large 3x3 convolutions (default as leanseg-infer)");
  cmd->callback([a, winograd] { run_predict(*a, winograd->count() > 0); });
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
  cli_conventions::add_out_option(*cmd, a->out, "The shards' output folder")->required();
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
