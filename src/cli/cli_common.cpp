#include "cli_common.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "leanseg/error.h"
#include "leanseg/prediction.h"
#include "leanseg/progress.h"

namespace leanseg::cli {

std::vector<std::string> split_channels(const std::string& csv) {
  std::vector<std::string> out;
  std::stringstream ss(csv);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

double parse_positive(const std::string& text, const std::string& option) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && v > 0 && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw Error(option + ": expected a positive number, got '" + text + "'");
}

Dataset load_dataset(const std::string& dir, const std::string& kind, const std::vector<std::string>& channels,
                     int num_classes, const ImageReadOptions& read) {
  return read_dataset(dir, kind, channels, num_classes, read);
}

void add_image_read_options(CLI::App* cmd, ImageReadArgs& a) {
  cmd->add_option("--page", a.page, "Page of multi-page TIFFs, from 0 (default 0, with a warning)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--channel", a.channel,
                  "Channel (sample) of multi-channel TIFFs, from 0 in file order; required for TIFFs with several "
                  "non-colour channels")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--intensity-range", a.intensity_range,
                  "LO,HI: float TIFF pixels map LO -> 0 and HI -> 1 (clamped); default each image's own min..max. "
                  "`train` records it in the model, which eval/predict then use");
}

ImageReadOptions image_read_options(const ImageReadArgs& a, const std::vector<double>& model_range) {
  ImageReadOptions o;
  o.page = a.page;
  o.channel = a.channel;
  o.intensity_range = a.intensity_range.empty() ? model_range : parse_intensity_range(a.intensity_range, "--intensity-range");
  return o;
}

std::vector<double> parse_class_weights(const std::string& csv) {
  std::vector<double> weights;
  size_t start = 0;
  while (start <= csv.size()) {
    const size_t comma = std::min(csv.find(',', start), csv.size());
    const std::string item = csv.substr(start, comma - start);
    try {
      size_t used = 0;
      const double v = std::stod(item, &used);
      require(used == item.size() && std::isfinite(v) && v >= 0, "");
      weights.push_back(v);
    } catch (const std::exception&) {
      throw Error("--class-weights: expected comma-separated numbers >= 0 (one per class, background first), got '" +
                  csv + "'");
    }
    start = comma + 1;
  }
  return weights;
}

std::string format_seconds(double s) { return format_duration(s); }

void print_report_summary(const EvalReport& r, const std::string& what) {
  std::printf("%s: %d images%s%s\n", what.c_str(), r.n_images,
              r.tta == "none" ? "" : (", test-time mirroring " + r.tta).c_str(),
              r.postprocess == "none" ? "" : (", post-processing " + r.postprocess).c_str());
  std::printf("  Dice %.4f  IoU %.4f (mean over images)   Dice %.4f  IoU %.4f (all pixels)\n", r.dice, r.iou,
              r.dice_pixels, r.iou_pixels);
  for (size_t c = 0; c < r.classes.size(); ++c)
    std::printf("  class %zu: Dice %.4f  IoU %.4f  HD95 %.2f px (means over images)   Dice %.4f (all pixels)\n", c + 1,
                r.classes[c].dice, r.classes[c].iou, r.classes[c].hd95, r.class_dice_pixels[c]);
  if (std::isfinite(r.hc_mae_mm))
    std::printf("  HC abs. error: mean %.2f mm, median %.2f mm (measured %.2f px inside the masks' fitted ellipses)\n",
                r.hc_mae_mm, r.hc_median_mm, r.hc_outline_offset_px);
  if (std::isfinite(r.hd_mm)) {
    const char* unit = std::isfinite(r.hc_mae_mm) ? "mm" : "px";
    std::printf("  boundary distances (means over images): Hausdorff %.2f %s, HD95 %.2f %s, ASSD %.2f %s\n", r.hd_mm,
                unit, r.hd95_mm, unit, r.assd_mm, unit);
  }
  char gflops[32] = "n/a";
  if (std::isfinite(r.flops)) std::snprintf(gflops, sizeof gflops, "%.3f", r.flops / 1e9);
  std::printf("  params %lld (non-zero %lld), %s GFLOPs, file %.2f MB, peak RSS %.0f MB\n",
              static_cast<long long>(r.params_total), static_cast<long long>(r.params_nonzero), gflops,
              r.file_bytes / 1e6, r.peak_rss_bytes / 1e6);
  std::printf("  latency per image (whole pipeline) median %.1f ms, p90 %.1f ms\n", r.latency_median_ms, r.latency_p90_ms);
  if (std::isfinite(r.mask_agreement))
    std::printf("  mask agreement with the reference model: %.4f%% of pixels\n", 100 * r.mask_agreement);
}

std::vector<size_t> indices_from_split(const Dataset& d, const std::string& path, const std::string& subset) {
  std::ifstream in(path);
  require(static_cast<bool>(in), "--split '" + path + "': cannot open");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw Error("--split '" + path + "': not valid JSON (" + e.what() + ")");
  }
  require(j.is_object(), "--split '" + path + "': should be a JSON object with 'train' and 'val' lists of image ids, got " +
                            std::string(j.type_name()));
  require(j.contains(subset) && j[subset].is_array(), "--split '" + path + "': has no '" + subset + "' list");
  std::map<std::string, size_t> by_id;
  for (size_t i = 0; i < d.samples.size(); ++i) by_id[d.samples[i].id] = i;
  std::vector<size_t> idx;
  for (const auto& id : j[subset]) {
    // An id of another type (a number, a list) would otherwise surface as a bare JSON type error.
    require(id.is_string(), "--split '" + path + "': '" + subset + "' should list image ids (strings), got " + id.dump());
    auto it = by_id.find(id.get<std::string>());
    require(it != by_id.end(), "--split '" + path + "': image '" + id.get<std::string>() + "' is not in " + d.kind + " data");
    idx.push_back(it->second);
  }
  return idx;
}

bool is_runtime_file(const std::string& path) { return std::filesystem::path(path).extension() == ".lsr"; }

Predictor runtime_predictor(const std::string& path, const std::string& precision, bool winograd,
                            std::shared_ptr<runtime::Engine>* engine) {
  struct Runtime {  // the engine and the preprocessing it reads stay together and in place
    runtime::Engine engine;
    Preprocessing pre;
  };
  runtime::EngineOptions options;
  options.precision = runtime::precision_from_name(precision);
  options.winograd = winograd;
  auto rt = std::make_shared<Runtime>(Runtime{runtime::Engine::load(path, options), {}});
  rt->pre = Preprocessing::from_json(rt->engine.model().preprocessing, "runtime model '" + path + "'");
  Predictor p;
  p.pre = rt->pre;
  p.size_divisor = rt->engine.model().size_divisor;
  p.run = [rt](const cv::Mat& image01) { return engine_probability_fn(rt->engine, rt->pre)(image01); };
  const int k = rt->engine.output_channels();
  p.num_classes = k == 1 ? 2 : k;
  if (engine) *engine = std::shared_ptr<runtime::Engine>(rt, &rt->engine);
  return p;
}

void add_distill_options(CLI::App* cmd, DistillArgs& a) {
  cmd->add_option("--distill", a.teacher, "Teacher model file for knowledge distillation (soft targets on the logits)");
  cmd->add_option("--distill-alpha", a.alpha, "Weight of the distillation loss (the task loss gets 1 - alpha)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--distill-temperature", a.temperature, "Softening temperature T")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

void apply_distill(const DistillArgs& a, TrainOptions& o) {
  o.teacher = a.teacher;
  o.distill_alpha = a.alpha;
  o.distill_temperature = a.temperature;
}

void add_postprocess_option(CLI::App* cmd, std::string& postprocess) {
  cmd->add_option("--postprocess", postprocess,
                  "Mask post-processing: none, largest (largest connected component) or ellipse (the filled ellipse "
                  "fitted to it, as HC18 entries measure the head)")
      ->check(CLI::IsMember(postprocess_names()))
      ->capture_default_str();
}

void add_tta_option(CLI::App* cmd, std::string& tta) {
  cmd->add_option("--tta", tta, "Test-time mirroring: none, h (left-right; 2 passes) or hv (4 passes), averaged")
      ->check(CLI::IsMember(tta_names()))
      ->capture_default_str();
}

int& threads_option() {
  static int threads = 0;
  return threads;
}

CLI::Option* add_model_option(CLI::App* cmd, std::string& model, ModelArg accepts, int* in_channels) {
  static const char* const kDescriptions[] = {
      "Model file (.safetensors, from train or compress)",
      "Model file, or an exported runtime model (.lsr: run on the LibTorch-free engine)",
      "Model file, or a registry name (random weights; `leanseg info` lists them)",
      "Registry name of the architecture (`leanseg info` lists them)",
  };
  CLI::Option* opt = cmd->add_option("--model,-m", model, kDescriptions[static_cast<int>(accepts)]);
  if (in_channels)
    cmd->add_option("--in-channels", *in_channels, "Input channels when --model is a name")->capture_default_str();
  return opt;
}

CLI::Option* add_model_files_option(CLI::App* cmd, std::vector<std::string>& models, const std::string& use) {
  return cmd->add_option("--model,-m", models, "Model files (repeatable): " + use);
}

CLI::Option* add_dataset_options(CLI::App* cmd, std::string& data, std::string& dataset, const std::string& use) {
  CLI::Option* opt = cmd->add_option("--data", data, "Dataset folder " + use);
  cmd->add_option("--dataset", dataset, "Layout of --data: hc18, bbbc010, folder (images/ + masks/) or auto (detected)")
      ->check(CLI::IsMember({"auto", "hc18", "bbbc010", "folder"}))
      ->capture_default_str();
  return opt;
}

void add_split_options(CLI::App* cmd, std::string& split, std::string& subset) {
  cmd->add_option("--split", split, "A training run's split.json: score only its --subset (default: every image)");
  cmd->add_option("--subset", subset, "train or val (with --split)")
      ->check(CLI::IsMember({"train", "val"}))
      ->capture_default_str();
}

CLI::Option* add_qat_option(CLI::App* cmd, int& bits, const std::string& description) {
  return cmd->add_option("--qat", bits, description + " (BITS: 8, 4 or 2; straight-through estimator)")
      ->type_name("BITS")
      ->check(CLI::IsMember({8, 4, 2}));
}

}  // namespace leanseg::cli
