// `leanseg demo [--out DIR]`: the main job on synthetic ultrasound data in a few minutes —
// generate, train a small model, evaluate at original resolution, predict with overlays,
// write a short Markdown report and report.html (as `eval --report`, with the training curves).
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
#include "leanseg/metrics.h"
#include "leanseg/train.h"

namespace leanseg::cli {
namespace fs = std::filesystem;
namespace {

struct DemoArgs {
  std::string out = "demo-out";
  int images = 160, epochs = 0;
  bool no_progress = false;
};

void write_overlays(const LoadedModel& m, const Dataset& d, const std::vector<size_t>& idx, const std::string& dir) {
  fs::create_directories(dir);
  for (size_t k = 0; k < std::min<size_t>(4, idx.size()); ++k) {
    const Sample& s = d.samples[idx[k]];
    const cv::Mat mask = threshold_mask(predict_probability(m.model, m.preprocessing, s.image), m.preprocessing.threshold);
    cv::Mat grey, bgr;
    s.image.convertTo(grey, CV_8U, 255.0);
    cv::cvtColor(grey, bgr, cv::COLOR_GRAY2BGR);
    std::vector<std::vector<cv::Point>> pred, truth;
    cv::findContours(mask.clone(), pred, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
    cv::findContours(s.mask.clone(), truth, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
    cv::drawContours(bgr, truth, -1, cv::Scalar(255, 128, 0), 1);
    cv::drawContours(bgr, pred, -1, cv::Scalar(0, 255, 0), 1);
    std::vector<unsigned char> buf;
    cv::imencode(".png", bgr, buf);
    atomic_write(dir + "/" + s.id + "_overlay.png", [&](std::ostream& o) { o.write(reinterpret_cast<const char*>(buf.data()), buf.size()); });
  }
}

std::string report_markdown(const TrainOptions& o, const TrainResult& r, const EvalReport& e, const Dataset& d) {
  char buf[2048];
  std::snprintf(buf, sizeof buf,
                "# leanseg demo\n\n"
                "Synthetic ultrasound-like images (%zu, %dx%d), model `%s` at %dx%d, %d epochs run (%s), "
                "training time %s.\n\n"
                "| metric (validation split, original resolution) | value |\n|---|---|\n"
                "| images | %d |\n| Dice (mean) | %.4f |\n| IoU (mean) | %.4f |\n| HC abs. error (mean) | %.2f mm |\n"
                "| Hausdorff (mean) | %.2f mm |\n| latency median / p90 | %.1f / %.1f ms |\n| params | %lld |\n\n"
                "Files: `report.html` (curves, per-image table, worst cases), `run/best.safetensors`, `run/metrics.csv`, "
                "`run/curves.png`, `run/split.json`, "
                "`overlays/*_overlay.png` (green: prediction, blue: ground truth).\n",
                d.samples.size(), d.samples[0].image.cols, d.samples[0].image.rows, o.model.c_str(), o.input_size,
                o.input_size, r.epochs_run, r.stop_reason.c_str(), format_seconds(r.seconds).c_str(), e.n_images, e.dice,
                e.iou, e.hc_mae_mm, e.hd_mm, e.latency_median_ms, e.latency_p90_ms, static_cast<long long>(e.params_total));
  return buf;
}

void run_demo(const DemoArgs& a) {
  fs::create_directories(a.out);
  std::cerr << "generating " << a.images << " synthetic ultrasound images...\n";
  const Dataset data = make_synthetic_ultrasound(a.images, 192, 256, 7);
  TrainOptions o = preset("demo");
  if (a.epochs) o.epochs = a.epochs;
  o.out_dir = a.out + "/run";
  o.progress = !a.no_progress;
  const TrainResult r = train_model(data, o);
  const LoadedModel best = load_model(o.out_dir + "/best.safetensors");
  const Split split = grouped_split(data, o.val_fraction, o.seed);
  EvalReport e = evaluate(best, data, split.val);
  e.file_bytes = static_cast<int64_t>(fs::file_size(o.out_dir + "/best.safetensors"));
  write_overlays(best, data, split.val, a.out + "/overlays");
  atomic_write(a.out + "/eval.json", [&](std::ostream& out) { out << e.to_json(true).dump(2) << "\n"; });
  const std::string report = report_markdown(o, r, e, data);
  atomic_write(a.out + "/report.md", [&](std::ostream& out) { out << report; });
  // The page eval --report writes, with the run's training curves.
  const std::string html = evaluation_report_html(e, data, split.val, libtorch_predictor(best),
                                                  "leanseg demo: " + o.model + " on synthetic ultrasound (validation split)",
                                                  24, o.out_dir + "/metrics.json");
  atomic_write(a.out + "/report.html", [&](std::ostream& out) { out << html; });
  print_report_summary(e, "demo validation split");
  std::cout << "report: " << a.out << "/report.md, " << a.out << "/report.html\n";
}

}  // namespace

void add_demo(CLI::App& app) {
  auto a = std::make_shared<DemoArgs>();
  auto* cmd = app.add_subcommand("demo", "Generate synthetic data, train, evaluate, predict and report (minutes)");
  cli_conventions::add_out_option(*cmd, a->out, "Output folder")->capture_default_str();
  cmd->add_option("--images", a->images, "Synthetic images to generate")->check(CLI::Range(20, 5000))->capture_default_str();
  cmd->add_option("--epochs", a->epochs, "Override the demo preset's epochs")->check(CLI::PositiveNumber);
  cmd->add_flag("--no-progress", a->no_progress, "No progress bar (one line per epoch)");
  cmd->callback([a] { run_demo(*a); });
}

}  // namespace leanseg::cli
