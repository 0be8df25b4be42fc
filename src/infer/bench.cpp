// `leanseg-infer MODEL.lsr --bench`: latency of the engine alone on random input of the model's
// input size (no image decoding or resizing), with the process's peak memory.
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "infer.h"
#include "leanseg/error.h"
#include "leanseg/stats.h"

namespace leanseg::infer {
namespace {
using Clock = std::chrono::steady_clock;

struct BenchResult {
  double median_ms = 0, p90_ms = 0, min_ms = 0, max_ms = 0, mean_ms = 0, throughput = 0;
  int64_t peak_rss_bytes = 0;
};

// Normal noise: a normalised image's scale, and no all-zero shortcuts inside oneDNN.
std::vector<float> random_input(const runtime::Engine& engine) {
  std::vector<float> x(static_cast<size_t>(engine.input_channels()) * engine.input_height() * engine.input_width());
  std::mt19937 rng(0);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (float& v : x) v = normal(rng);
  return x;
}

BenchResult time_runs(runtime::Engine& engine, int runs, int warmup) {
  const std::vector<float> x = random_input(engine);
  for (int i = 0; i < warmup; ++i) engine.run(x.data());
  std::vector<double> ms;
  ms.reserve(runs);
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    engine.run(x.data());
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  BenchResult r;
  r.median_ms = percentile(ms, 0.5);
  r.p90_ms = percentile(ms, 0.9);
  r.min_ms = *std::min_element(ms.begin(), ms.end());
  r.max_ms = *std::max_element(ms.begin(), ms.end());
  for (double v : ms) r.mean_ms += v / ms.size();
  r.throughput = r.median_ms > 0 ? 1000.0 / r.median_ms : 0.0;
  r.peak_rss_bytes = peak_rss_bytes();
  return r;
}

nlohmann::json to_json(const Options& o, const runtime::Engine& e, const BenchResult& r) {
  return {{"model", o.model},
          {"precision", runtime::precision_name(e.options().precision)},
          {"threads", effective_threads(o.threads)},
          {"winograd", e.options().winograd},
          {"winograd_layers", e.winograd_layers()},
          {"channels", e.input_channels()},
          {"height", e.input_height()},
          {"width", e.input_width()},
          {"runs", o.runs},
          {"warmup", o.warmup},
          {"median_ms", r.median_ms},
          {"p90_ms", r.p90_ms},
          {"min_ms", r.min_ms},
          {"max_ms", r.max_ms},
          {"mean_ms", r.mean_ms},
          {"throughput", r.throughput},
          {"peak_rss_bytes", r.peak_rss_bytes},
          {"arena_bytes", e.arena_bytes()},
          {"weight_bytes", e.weight_bytes()}};
}

void print_text(const Options& o, const runtime::Engine& e, const BenchResult& r) {
  const std::string winograd = e.winograd_layers() ? " (Winograd on " + std::to_string(e.winograd_layers()) + " convs)" : "";
  std::printf("%s: %s%s, %d threads, input %dx%dx%d, %d runs after %d warm-up\n", o.model.c_str(),
              runtime::precision_name(e.options().precision), winograd.c_str(), effective_threads(o.threads), e.input_channels(),
              e.input_height(), e.input_width(), o.runs, o.warmup);
  std::printf("  latency     median %.2f ms, p90 %.2f ms, min %.2f ms, max %.2f ms\n", r.median_ms, r.p90_ms,
              r.min_ms, r.max_ms);
  std::printf("  throughput  %.1f images/s\n", r.throughput);
  std::printf("  memory      peak RSS %.1f MB, arena %.1f MB, weights %.1f MB\n", r.peak_rss_bytes / 1e6,
              e.arena_bytes() / 1e6, e.weight_bytes() / 1e6);
}

}  // namespace

int effective_threads(int requested) {
  if (requested > 0) return requested;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void run_bench(const Options& o) {
  require(o.images.empty(), "--bench times random input: give no images (got '" +
                                (o.images.empty() ? std::string() : o.images[0]) + "')");
  runtime::Engine engine = load_engine(o);
  const BenchResult r = time_runs(engine, o.runs, o.warmup);
  if (o.json) std::printf("%s\n", to_json(o, engine, r).dump(2).c_str());
  else print_text(o, engine, r);
}

}  // namespace leanseg::infer
