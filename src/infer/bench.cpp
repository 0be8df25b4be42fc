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
#include "util/cli_conventions.h"
#include "leanseg/error.h"
#include "leanseg/stats.h"

namespace leanseg::infer {
namespace {
using Clock = std::chrono::steady_clock;

struct BenchResult {
  double median_ms = 0, p90_ms = 0, min_ms = 0, max_ms = 0, mean_ms = 0, throughput = 0;
  int64_t peak_rss_bytes = 0;
  // Contention: calls whose (last) run used fewer threads than asked (EngineOptions::adapt_threads),
  // and the median share of the runs' thread time spent waiting for a core (-1: unknown).
  int runs_on_fewer_threads = 0;
  double median_waited_share = -1;
};

// Normal noise: a normalised image's scale, and no all-zero shortcuts inside oneDNN.
std::vector<float> random_input(const runtime::Engine& engine, int batch = 1) {
  std::vector<float> x(static_cast<size_t>(batch) * engine.input_channels() * engine.input_height() * engine.input_width());
  std::mt19937 rng(0);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (float& v : x) v = normal(rng);
  return x;
}

// Latencies are per call (`batch` images); throughput is images per second at the median.
BenchResult time_runs(runtime::Engine& engine, int runs, int warmup, int batch) {
  const std::vector<float> x = random_input(engine, batch);
  std::vector<float> out(static_cast<size_t>(batch) * engine.input_height() * engine.input_width());
  for (int i = 0; i < warmup; ++i) engine.run_batch(x.data(), batch, out.data());
  std::vector<double> ms, waited;
  ms.reserve(runs);
  BenchResult r;
  const int all_threads = effective_threads(engine.options().threads);
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    engine.run_batch(x.data(), batch, out.data());
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    if (engine.last_run_threads() < all_threads) ++r.runs_on_fewer_threads;
    if (engine.last_run_waited_share() >= 0) waited.push_back(engine.last_run_waited_share());
  }
  if (!waited.empty()) r.median_waited_share = percentile(waited, 0.5);
  r.median_ms = percentile(ms, 0.5);
  r.p90_ms = percentile(ms, 0.9);
  r.min_ms = *std::min_element(ms.begin(), ms.end());
  r.max_ms = *std::max_element(ms.begin(), ms.end());
  for (double v : ms) r.mean_ms += v / ms.size();
  r.throughput = r.median_ms > 0 ? 1000.0 * batch / r.median_ms : 0.0;
  r.peak_rss_bytes = peak_rss_bytes();
  return r;
}

// The convolutions' arithmetic rate at the median (the roofline's y axis; docs/runtime.md).
double achieved_gflops(const runtime::Engine& e, const BenchResult& r) {
  return r.median_ms > 0 ? e.flops() * r.throughput / 1e9 : 0.0;
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
          {"batch", o.batch},
          {"median_ms", r.median_ms},
          {"p90_ms", r.p90_ms},
          {"min_ms", r.min_ms},
          {"max_ms", r.max_ms},
          {"mean_ms", r.mean_ms},
          {"throughput", r.throughput},
          {"gflop_per_image", e.flops() / 1e9},
          {"gflops_per_second", achieved_gflops(e, r)},
          {"adapt_threads", e.options().adapt_threads},
          {"runs_on_fewer_threads", r.runs_on_fewer_threads},
          {"median_waited_share", r.median_waited_share},
          {"peak_rss_bytes", r.peak_rss_bytes},
          {"arena_bytes", e.arena_bytes()},
          {"weight_bytes", e.weight_bytes()}};
}

void print_text(const Options& o, const runtime::Engine& e, const BenchResult& r) {
  const std::string winograd = e.winograd_layers() ? " (Winograd on " + std::to_string(e.winograd_layers()) + " convs)" : "";
  std::printf("%s: %s%s, %d threads, input %dx%dx%dx%d, %d runs after %d warm-up\n", o.model.c_str(),
              runtime::precision_name(e.options().precision), winograd.c_str(), effective_threads(o.threads), o.batch,
              e.input_channels(), e.input_height(), e.input_width(), o.runs, o.warmup);
  std::printf("  latency     median %.2f ms, p90 %.2f ms, min %.2f ms, max %.2f ms\n", r.median_ms, r.p90_ms,
              r.min_ms, r.max_ms);
  std::printf("  throughput  %.1f images/s, %.2f GFLOP per image (convs as planned), %.1f GFLOP/s\n", r.throughput,
              e.flops() / 1e9, achieved_gflops(e, r));
  if (r.median_waited_share >= 0)
    std::printf("  cores       waited for a core %.1f%% of thread time (median); %d of %d runs on fewer threads\n",
                100 * r.median_waited_share, r.runs_on_fewer_threads, o.runs);
  std::printf("  memory      peak RSS %.1f MB, arena %.1f MB, weights %.1f MB\n", r.peak_rss_bytes / 1e6,
              e.arena_bytes() / 1e6, e.weight_bytes() / 1e6);
}

// One step's median time over the profiled runs.
struct StepTime {
  std::string name, kind;
  double median_ms = 0;
};

// `runs` more runs, each step timed (the engine waits after every step, so the sum is a little
// above the plain latency); medians per step, slowest first.
std::vector<StepTime> profile_steps(runtime::Engine& engine, int runs) {
  const std::vector<float> x = random_input(engine);
  std::vector<runtime::StepProfile> one;
  std::vector<std::vector<double>> ms;
  for (int i = 0; i < runs; ++i) {
    engine.run_profiled(x.data(), &one);
    ms.resize(one.size());
    for (size_t s = 0; s < one.size(); ++s) ms[s].push_back(one[s].ms);
  }
  std::vector<StepTime> steps;
  for (size_t s = 0; s < one.size(); ++s) steps.push_back({one[s].name, one[s].kind, percentile(ms[s], 0.5)});
  std::stable_sort(steps.begin(), steps.end(), [](const StepTime& a, const StepTime& b) { return a.median_ms > b.median_ms; });
  return steps;
}

nlohmann::json profile_json(const std::vector<StepTime>& steps) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& s : steps) j.push_back({{"name", s.name}, {"kind", s.kind}, {"median_ms", s.median_ms}});
  return j;
}

void print_profile(const std::vector<StepTime>& steps) {
  double total = 0;
  for (const auto& s : steps) total += s.median_ms;
  std::printf("  steps (median ms, share of their sum %.2f ms), slowest first:\n", total);
  for (const auto& s : steps)
    std::printf("    %8.3f  %5.1f%%  %-40s %s\n", s.median_ms, total > 0 ? 100 * s.median_ms / total : 0.0,
                s.name.c_str(), s.kind.c_str());
}

}  // namespace

int effective_threads(int requested) {
  if (requested > 0) return requested;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void run_bench(const Options& o) {
  require_usage(o.images.empty(), "--bench times random input: give no images (got '" +
                                      (o.images.empty() ? std::string() : o.images[0]) + "')");
  runtime::Engine engine = load_engine(o);
  const BenchResult r = time_runs(engine, o.runs, o.warmup, o.batch);
  const std::vector<StepTime> profile = o.profile ? profile_steps(engine, o.runs) : std::vector<StepTime>();
  if (o.json) {
    nlohmann::json j = to_json(o, engine, r);
    if (o.profile) j["profile"] = profile_json(profile);
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    print_text(o, engine, r);
    if (o.profile) print_profile(profile);
  }
}

}  // namespace leanseg::infer
