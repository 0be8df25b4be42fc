// `leanseg eval --model FILE --data DIR [--dataset K] [--split RUN/split.json --subset val] [--json]
//  [--precision fp32|bf16|int8] [--no-winograd] [--tta none|h|hv] [--postprocess none|largest|ellipse] [--quantized-engine E] [--reference-model FILE]`. FILE
// is a model file (LibTorch; int8 runs LibTorch's quantized kernels, calibrated on the split's
// training images) or an exported .lsr file (the LibTorch-free runtime, at --precision; at fp32
// with its Winograd kernel unless --no-winograd, as `leanseg-infer` deploys it).
#include <filesystem>
#include <cmath>
#include <fstream>
#include <optional>
#include <iostream>

#include "calibration.h"
#include "cli_common.h"
#include "commands.h"
#include "leanseg/compress.h"
#include "leanseg/error.h"
#include "leanseg/evaluate.h"
#include "leanseg/fs.h"
#include "leanseg/inference.h"
#include "leanseg/info.h"
#include "leanseg/quantized_libtorch.h"
#include "leanseg/runtime.h"

namespace leanseg::cli {
namespace {

struct EvalArgs {
  std::string model, data, dataset = "auto", split, subset = "val", out_json, precision = "fp32", reference;
  std::string quantized_engine = "auto", tta = "none", postprocess = "none", report;
  int calibration_images = 16;
  bool json = false, per_image = false, winograd = runtime::winograd_is_fast_on_this_cpu();
  bool winograd_given = false;  // --winograd or --no-winograd on the command line
  ImageReadArgs read;           // --page, --channel, --intensity-range
};

// A model file or a .lsr file as a Predictor; `report` receives the model's params/FLOPs.
struct Network {
  Predictor predictor;
  int64_t params = 0, params_nonzero = 0;
  double flops = std::nan("");
  nlohmann::json compression;    // model files written by `leanseg compress`
  std::string compression_text;
};

// LibTorch's quantized kernels on `m`, calibrated on the training side of the evaluation's split.
Predictor libtorch_int8_predictor(const LoadedModel& m, const EvalArgs& a) {
  require_usage(!a.split.empty(),
                "--precision int8 on a model file calibrates on training images: give --split RUN/split.json (the "
                "validation images must not be used for calibration)");
  auto q = std::make_shared<LibTorchInt8Model>(
      libtorch_int8_model(m, {a.data, a.split, a.calibration_images}, a.quantized_engine));
  std::fprintf(stderr, "int8 (LibTorch %s engine): %d convolutions quantized, %d left in fp32\n", q->engine().c_str(),
               q->quantized_convolutions(), q->float_convolutions());
  Predictor p = libtorch_predictor(m);
  p.run = logits_probability_fn([q](const torch::Tensor& x) { return q->forward(x); }, m.preprocessing);
  return p;
}

Network open_network(const std::string& path, const std::string& precision, bool winograd, const EvalArgs& a) {
  Network n;
  if (!is_runtime_file(path)) {
    require_usage(precision == "fp32" || precision == "int8",
                  "--precision " + precision + " on a model file: fp32 or int8 (LibTorch's quantized kernels); bf16 needs an "
                  "exported .lsr model (leanseg export --format runtime)");
    const LoadedModel m = load_model(path);
    n.predictor = precision == "int8" ? libtorch_int8_predictor(m, a) : libtorch_predictor(m);
    const ParamCounts c = count_params(*m.model);
    n.params = c.total, n.params_nonzero = c.nonzero;
    n.flops = summarize(m.model, m.preprocessing.input_height, m.preprocessing.input_width).flops;
    if (m.extra.is_object() && m.extra.contains("compression")) n.compression = m.extra["compression"];
    n.compression_text = describe_compression(m);
    return n;
  }
  std::shared_ptr<runtime::Engine> engine;
  n.predictor = runtime_predictor(path, precision, winograd, &engine);
  n.params = n.params_nonzero = engine->model().graph.parameter_count();
  n.flops = engine->flops();
  return n;
}

void run_eval(const EvalArgs& a) {
  require_usage(!a.winograd_given || (is_runtime_file(a.model) && a.precision == "fp32"),
                "--winograd/--no-winograd select the runtime's fp32 convolution kernels: they need an exported .lsr model "
                "and --precision fp32 (got '" + a.model + "', " + a.precision + ")");
  Network net = open_network(a.model, a.precision, a.winograd, a);
  net.predictor.run = mirrored_probability_fn(std::move(net.predictor.run), a.tta);  // the reference runs once
  net.predictor.postprocess = a.postprocess;
  const Preprocessing& pre = net.predictor.pre;
  const Dataset data = load_dataset(a.data, a.dataset, pre.channels, net.predictor.num_classes,
                                    image_read_options(a.read, pre.intensity_range));
  require(data.channels == pre.channels,
          "'" + a.model + "' expects channels " + nlohmann::json(pre.channels).dump() + " but the data has " +
              nlohmann::json(data.channels).dump());
  const auto idx = a.split.empty() ? std::vector<size_t>{} : indices_from_split(data, a.split, a.subset);
  std::optional<Network> reference;
  if (!a.reference.empty()) reference = open_network(a.reference, "fp32", false, a);
  EvalReport rep = evaluate_predictor(net.predictor, data, idx, reference ? &reference->predictor : nullptr);
  if (data.kind == "hc18" && pre.hc_outline_offset_px == 0)
    std::cerr << "note: '" << a.model << "' does not record where HC18's reference HC lies (a model trained before "
              << "2026-12-07): HC is measured on its masks' own edge, about 0.8 px outside the annotated line's middle "
              << "(+0.7 mm on average); retrain to measure it where the reference does\n";
  rep.tta = a.tta;
  rep.params_total = net.params, rep.params_nonzero = net.params_nonzero, rep.flops = net.flops;
  rep.file_bytes = static_cast<int64_t>(std::filesystem::file_size(a.model));
  if (!a.report.empty()) {
    const std::string title = "leanseg eval: " + std::filesystem::path(a.model).filename().string() + " on " + data.kind +
                              (a.split.empty() ? "" : " (" + a.subset + " split)");
    // A model from a run folder (RUN/best.safetensors) has the run's metrics.json beside it.
    const std::string metrics = (std::filesystem::path(a.model).parent_path() / "metrics.json").string();
    const std::string html = evaluation_report_html(rep, data, idx, net.predictor, title, 24,
                                                    std::filesystem::is_regular_file(metrics) ? metrics : "");
    atomic_write(a.report, [&](std::ostream& out) { out << html; });
    std::cerr << "report: " << a.report << "\n";
  }
  if (a.json) {
    auto j = rep.to_json(a.per_image);
    if (!net.compression.is_null()) j["compression"] = net.compression;
    std::cout << j.dump(2) << "\n";
    return;
  }
  print_report_summary(rep, data.kind + (a.split.empty() ? "" : " (" + a.subset + " split)"));
  if (!net.compression_text.empty()) std::printf("  compression: %s\n", net.compression_text.c_str());
}

}  // namespace

void add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Score a model file on a dataset at original resolution");
  add_model_option(cmd, a->model, ModelArg::FileOrRuntime)->required();
  add_dataset_options(cmd, a->data, a->dataset, "to score on")->required();
  add_split_options(cmd, a->split, a->subset);
  cmd->add_option("--precision", a->precision,
                  "fp32, bf16 or int8 (.lsr: the runtime; model file: fp32, or int8 on LibTorch's quantized kernels)")
      ->check(CLI::IsMember({"fp32", "bf16", "int8"}))
      ->capture_default_str();
  auto* winograd = cmd->add_flag("--winograd,!--no-winograd", a->winograd,
                                 ".lsr at fp32: the Winograd kernel for the large 3x3 convolutions (default with AVX-512 "
                                 "or AVX2, as leanseg-infer); --no-winograd: direct convolutions only");
  add_tta_option(cmd, a->tta);
  add_postprocess_option(cmd, a->postprocess);
  add_image_read_options(cmd, a->read);
  cmd->add_option("--quantized-engine", a->quantized_engine, "int8 on a model file: auto, onednn, fbgemm or qnnpack")
      ->capture_default_str();
  cmd->add_option("--calibration-images", a->calibration_images, "int8 on a model file: training images to calibrate on")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--reference-model", a->reference,
                  "Also report the share of pixels whose mask agrees with this model's (file or .lsr, fp32)");
  cmd->add_option("--report", a->report,
                  "Also write a self-contained HTML report (summary, per-image table sortable by Dice, overlays of the "
                  "worst images first)");
  cmd->add_flag("--json", a->json, "JSON output (keys dice, iou, hc_mae_mm, hd_mm, n_images, ...)");
  cmd->add_flag("--per-image", a->per_image, "Include per-image scores in the JSON");
  cmd->callback([a, winograd] {
    a->winograd_given = winograd->count() > 0;
    run_eval(*a);
  });
}

}  // namespace leanseg::cli
