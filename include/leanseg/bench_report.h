// The comparison table of `leanseg bench` (SPEC E2): one row per model variant and engine with
// accuracy, size and speed as measured, written as Markdown, CSV and a Dice-vs-latency plot.
// Torch-free.
#pragma once
#include <cmath>
#include <string>
#include <vector>

namespace leanseg {

struct BenchRow {
  std::string model;    // label of the model (e.g. "M1 mobilenet-aspp-se-unet")
  std::string variant;  // what was done to it ("fp32", "int8 per channel", "magnitude 50% → fine-tune 2 → int8", ...)
  std::string engine;   // "LibTorch" or "runtime"
  std::string precision = "fp32";  // arithmetic of the engine: fp32, bf16 or int8
  double dice = NAN, iou = NAN, hc_mae_mm = NAN;
  int64_t params = 0, params_nonzero = 0;
  double flops = NAN;  // per image at the model's input size
  int64_t file_bytes = 0, peak_rss_bytes = 0;
  double latency_median_ms = NAN, latency_p90_ms = NAN, throughput = NAN;  // batch 1
};

std::string bench_markdown(const std::vector<BenchRow>& rows);
// Header + one line per row; numbers unrounded, empty fields for NaN. Fields with commas quoted.
std::string bench_csv(const std::vector<BenchRow>& rows);
// Dice (y) against median latency (x), marker area ∝ file size, one series per model.
void bench_plot(const std::vector<BenchRow>& rows, const std::string& png_path, const std::string& title);

}  // namespace leanseg
