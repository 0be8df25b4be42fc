// `leanseg latency --model FILE|NAME [--input-size N] [--runs N] [--warmup N] [--precision fp32|int8]
// [--quantized-engine E] [--json]`: LibTorch eager inference time of one image (batch 1, no grad,
// random input at the model's input size) and this process's peak memory; int8 runs LibTorch's
// quantized kernels (calibrated on random inputs: the timing does not depend on the ranges). The LibTorch counterpart of `leanseg-infer --bench`, with the
// same JSON keys; `leanseg bench` runs it in a fresh process per model.
#include <chrono>
#include <cstdio>

#include "calibration.h"
#include "cli_common.h"
#include "commands.h"
#include "leanseg/error.h"
#include "leanseg/model_file.h"
#include "leanseg/stats.h"

namespace leanseg::cli {
namespace {

struct LatencyArgs {
  std::string model;
  int input_size = 0, runs = 30, warmup = 3, in_channels = 1;
  std::string precision = "fp32", quantized_engine = "auto";
  bool json = false;
};

void run_latency(const LatencyArgs& a) {
  LoadedModel m = open_model(a.model, a.in_channels);
  const int64_t h = a.input_size ? a.input_size : (m.preprocessing.input_height > 0 ? m.preprocessing.input_height : 256);
  const int64_t w = a.input_size ? a.input_size : (m.preprocessing.input_width > 0 ? m.preprocessing.input_width : 256);
  torch::NoGradGuard no_grad;
  m.model->eval();
  torch::manual_seed(0);
  const auto x = torch::randn({1, m.model->config().in_channels, h, w});
  std::function<torch::Tensor(const torch::Tensor&)> forward = [&](const torch::Tensor& t) { return m.model->forward(t); };
  std::string engine = "libtorch";
  if (a.precision == "int8") {
    auto q = std::make_shared<LibTorchInt8Model>(libtorch_int8_model(m, {"random", "", 4}, a.quantized_engine));
    forward = [q](const torch::Tensor& t) { return q->forward(t); };
    engine = "libtorch-int8-" + q->engine();
  }
  for (int i = 0; i < a.warmup; ++i) forward(x);
  std::vector<double> ms;
  for (int i = 0; i < a.runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto y = forward(x);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    require(y.size(2) == h, "latency: unexpected output shape");
  }
  const double median = percentile(ms, 0.5);
  const nlohmann::json j = {{"model", a.model},         {"engine", engine},
                            {"threads", at::get_num_threads()}, {"input", {m.model->config().in_channels, h, w}},
                            {"runs", a.runs},            {"warmup", a.warmup},
                            {"median_ms", median},       {"p90_ms", percentile(ms, 0.9)},
                            {"min_ms", percentile(ms, 0)}, {"max_ms", percentile(ms, 1)},
                            {"throughput", 1000.0 / median}, {"peak_rss_bytes", peak_rss_bytes()}};
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("%s: LibTorch eager (%s), %d threads, input %lldx%lld, %d runs after %d warm-up\n", a.model.c_str(), engine.c_str(),
              at::get_num_threads(), static_cast<long long>(h), static_cast<long long>(w), a.runs, a.warmup);
  std::printf("  median %.2f ms  p90 %.2f ms  min %.2f ms  max %.2f ms  (%.1f images/s)  peak RSS %.0f MB\n", median,
              j["p90_ms"].get<double>(), j["min_ms"].get<double>(), j["max_ms"].get<double>(), 1000.0 / median,
              static_cast<double>(peak_rss_bytes()) / 1e6);
}

}  // namespace

void add_latency(CLI::App& app) {
  auto a = std::make_shared<LatencyArgs>();
  auto* cmd = app.add_subcommand("latency", "Time LibTorch inference of one image (batch 1) and report peak memory");
  add_model_option(cmd, a->model, ModelArg::FileOrName, &a->in_channels)->required();
  cmd->add_option("--input-size", a->input_size, "Square input size (default: the model's input size, else 256)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--runs", a->runs, "Timed runs")->check(CLI::Range(1, 1000000))->capture_default_str();
  cmd->add_option("--warmup", a->warmup, "Untimed runs first")->check(CLI::Range(0, 1000000))->capture_default_str();
  cmd->add_option("--precision", a->precision, "fp32, or int8 on LibTorch's quantized kernels")
      ->check(CLI::IsMember({"fp32", "int8"}))
      ->capture_default_str();
  cmd->add_option("--quantized-engine", a->quantized_engine, "int8: auto, onednn, fbgemm or qnnpack")->capture_default_str();
  cmd->add_flag("--json", a->json, "JSON (median_ms, p90_ms, min_ms, max_ms, throughput, peak_rss_bytes)");
  cmd->callback([a] { run_latency(*a); });
}

}  // namespace leanseg::cli
