// LibTorch eager (fp32) against leanseg's oneDNN runtime (fp32, bf16, int8) on zoo models with
// random weights, batch 1, one input size. Each model is exported in-process (model_graph →
// RuntimeModel → Engine::from_model); the fp32 engine is first checked against LibTorch. Timing
// is interleaved round-robin (one run of every variant per round) so that machine noise —
// other processes, frequency changes — hits every variant alike.
//
//   bench_runtime [MODEL...] [--size 256] [--threads 2] [--rounds 20] [--warmup 2] [--csv FILE]
//   bench_runtime MODEL --libtorch-memory   LibTorch alone: its peak RSS, to compare with
//                                           `leanseg-infer MODEL.lsr --bench --json` (peak_rss_bytes)
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <sstream>

#include "leanseg/error.h"
#include "leanseg/threads.h"
#include "leanseg/fs.h"
#include "leanseg/graph_export.h"
#include "leanseg/model.h"
#include "leanseg/runtime.h"
#include "leanseg/runtime_file.h"
#include "leanseg/stats.h"
#include "runtime/calibrate.h"

namespace {
using namespace leanseg;
using Clock = std::chrono::steady_clock;

struct Args {
  std::vector<std::string> models{"mobilenet-aspp-se-unet", "unet-32", "efficient-unet"};
  int size = 256, threads = 2, rounds = 20, warmup = 2, calibration_images = 4;
  std::string csv;
  bool libtorch_memory = false;
};

struct Variant {
  std::string name;
  std::function<void()> run;
  size_t arena_bytes = 0, weight_bytes = 0;  // engines only
  std::vector<double> ms;
};

struct Row {
  std::string model, variant, note;  // note: "n/a: why" when the variant could not run
  double median = 0, min = 0, max = 0, ratio = 0;
  size_t arena_bytes = 0, weight_bytes = 0;
};

RuntimeModel export_model(const SegmentationModelImpl& model, int size) {
  GraphInputShape shape;
  shape.height = shape.width = size;
  RuntimeModel rt;
  rt.graph = model_graph(model, shape);
  rt.config = model.config().to_json();
  rt.size_divisor = model.size_divisor();
  return rt;
}

// int8 needs activation ranges; untrained models have no data, so normal noise (the scale of a
// normalised image) stands in — good for timing, meaningless for accuracy.
void calibrate_on_noise(RuntimeModel& rt, int images) {
  const auto& shape = rt.graph.inputs[0].shape;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<runtime::PlainTensor> inputs;
  for (int i = 0; i < images; ++i) {
    std::vector<float> v(static_cast<size_t>(shape[1] * shape[2] * shape[3]));
    for (auto& x : v) x = normal(rng);
    inputs.push_back(runtime::PlainTensor::floats(shape, std::move(v)));
  }
  rt.activation_absmax = runtime::calibrate_activations(rt.graph, inputs);
}

torch::Tensor logits_tensor(const std::vector<float>& logits, int size) {
  return torch::from_blob(const_cast<float*>(logits.data()), {1, 1, size, size}, torch::kFloat32).clone();
}

// Prints max |Δlogit| of an engine against LibTorch (absolute and relative to the logit range).
void print_agreement(const std::string& what, const torch::Tensor& ours, const torch::Tensor& reference) {
  const double diff = (ours - reference).abs().max().item<double>();
  const double range = (reference.max() - reference.min()).item<double>();
  std::printf("  %-14s max |Δlogit| vs LibTorch %.3g (%.3g of the logit range %.3g)\n", what.c_str(), diff,
              range > 0 ? diff / range : 0.0, range);
}

// Engine variants of one model; precisions the engine refuses become "n/a" rows.
std::vector<Variant> engine_variants(const Args& a, const std::string& name, const SegmentationModelImpl& model,
                                     const torch::Tensor& x, const torch::Tensor& reference, std::vector<Row>& na) {
  std::vector<Variant> out;
  // fp32 as deployed (Winograd on the large 3x3 convs) and with oneDNN's direct convs only.
  const std::pair<runtime::Precision, bool> kinds[] = {{runtime::Precision::F32, true},
                                                        {runtime::Precision::F32, false},
                                                        {runtime::Precision::BF16, true},
                                                        {runtime::Precision::I8, true}};
  for (const auto& [p, winograd] : kinds) {
    const std::string variant = std::string("runtime-") + runtime::precision_name(p) + (winograd ? "" : "-direct");
    try {
      RuntimeModel rt = export_model(model, a.size);
      if (p == runtime::Precision::I8) calibrate_on_noise(rt, a.calibration_images);
      auto engine =
          std::make_shared<runtime::Engine>(runtime::Engine::from_model(std::move(rt), {p, a.threads, winograd}));
      const float* input = x.data_ptr<float>();
      print_agreement(variant, logits_tensor(engine->run(input), a.size), reference);
      out.push_back({variant, [engine, input] { engine->run(input); }, engine->arena_bytes(), engine->weight_bytes(), {}});
    } catch (const std::exception& e) {
      std::printf("  %-14s n/a: %s\n", variant.c_str(), e.what());
      na.push_back({name, variant, std::string("n/a: ") + e.what()});
    }
  }
  return out;
}

// Warm-up, then `rounds` rounds of one run of each variant.
void time_round_robin(std::vector<Variant>& variants, int rounds, int warmup) {
  for (int i = 0; i < warmup; ++i)
    for (auto& v : variants) v.run();
  for (int r = 0; r < rounds; ++r)
    for (auto& v : variants) {
      const auto start = Clock::now();
      v.run();
      v.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
}

// LibTorch only, nothing else allocated in the process: the peak RSS a LibTorch deployment of
// the model needs for batch-1 inference.
void libtorch_memory(const Args& a, const std::string& name) {
  SegmentationModel model = create_model(name, 1);
  model->eval();
  const torch::Tensor x = torch::randn({1, 1, a.size, a.size});
  std::vector<double> ms;
  for (int r = 0; r < a.warmup + a.rounds; ++r) {
    const auto start = Clock::now();
    model->forward(x);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::printf("%s libtorch-fp32 %dx%d, %d threads: median %.1f ms, peak RSS %.1f MB\n", name.c_str(), a.size, a.size,
              a.threads, percentile(ms, 0.5), peak_rss_bytes() / 1e6);
}

std::vector<Row> bench_model(const Args& a, const std::string& name) {
  std::printf("%s at %dx%d, batch 1, %d threads\n", name.c_str(), a.size, a.size, a.threads);
  std::fflush(stdout);
  SegmentationModel model = create_model(name, 1);
  model->eval();
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({1, 1, a.size, a.size});
  const torch::Tensor reference = model->forward(x);

  std::vector<Row> rows;
  std::vector<Variant> variants{{"libtorch-fp32", [&] { model->forward(x); }, 0, 0, {}}};
  for (auto& v : engine_variants(a, name, *model, x, reference, rows)) variants.push_back(std::move(v));
  time_round_robin(variants, a.rounds, a.warmup);

  const double libtorch_median = percentile(variants[0].ms, 0.5);
  std::vector<Row> timed;
  for (const auto& v : variants) {
    Row r{name, v.name, ""};
    r.median = percentile(v.ms, 0.5);
    r.min = *std::min_element(v.ms.begin(), v.ms.end());
    r.max = *std::max_element(v.ms.begin(), v.ms.end());
    r.ratio = libtorch_median / r.median;
    r.arena_bytes = v.arena_bytes, r.weight_bytes = v.weight_bytes;
    timed.push_back(r);
  }
  timed.insert(timed.end(), rows.begin(), rows.end());  // n/a rows last
  return timed;
}

std::string mb(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", bytes / 1e6);
  return bytes ? buf : "";
}

void print_markdown(const std::vector<Row>& rows) {
  std::printf("\n| model | variant | median ms | min ms | max ms | vs LibTorch | arena MB | weights MB |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& r : rows) {
    if (!r.note.empty()) {
      std::printf("| %s | %s | %s | | | | | |\n", r.model.c_str(), r.variant.c_str(), r.note.c_str());
      continue;
    }
    std::printf("| %s | %s | %.2f | %.2f | %.2f | %.2fx | %s | %s |\n", r.model.c_str(), r.variant.c_str(), r.median,
                r.min, r.max, r.ratio, mb(r.arena_bytes).c_str(), mb(r.weight_bytes).c_str());
  }
}

// CSV fields: quoted when they could contain a comma or quote (the n/a notes).
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c == '\n' ? ' ' : c);
  return q + "\"";
}

void write_csv(const std::string& path, const std::vector<Row>& rows, const Args& a) {
  atomic_write(path, [&](std::ostream& o) {
    o << "model,variant,size,threads,rounds,median_ms,min_ms,max_ms,ratio_vs_libtorch,arena_bytes,weight_bytes,note\n";
    for (const auto& r : rows) {
      o << csv_field(r.model) << ',' << r.variant << ',' << a.size << ',' << a.threads << ',' << a.rounds << ',';
      if (r.note.empty())
        o << r.median << ',' << r.min << ',' << r.max << ',' << r.ratio << ',' << r.arena_bytes << ',' << r.weight_bytes;
      else
        o << ",,,,,";
      o << ',' << csv_field(r.note) << '\n';
    }
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"LibTorch eager vs leanseg's oneDNN runtime (fp32, bf16, int8) on zoo models"};
  Args a;
  app.add_option("models", a.models, "Zoo model names")->capture_default_str();
  app.add_option("--size", a.size, "Square input size")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--threads", a.threads, "Threads for LibTorch and the engine")->check(CLI::Range(1, 1024))->capture_default_str();
  app.add_option("--rounds", a.rounds, "Timed rounds (one run of each variant per round)")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--warmup", a.warmup, "Untimed rounds first")->check(CLI::Range(0, 1000))->capture_default_str();
  app.add_option("--calibration-images", a.calibration_images, "int8: noise images to calibrate on")->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_option("--csv", a.csv, "Also write the table as CSV to this file");
  app.add_flag("--libtorch-memory", a.libtorch_memory, "Run only LibTorch and print its peak RSS");
  CLI11_PARSE(app, argc, argv);
  try {
    leanseg::set_cpu_threads(a.threads);  // as `leanseg` does (OpenBLAS kept at 1 thread)
    torch::InferenceMode inference;
    if (a.libtorch_memory) {
      for (const auto& name : a.models) libtorch_memory(a, name);
      return 0;
    }
    std::vector<Row> rows;
    for (const auto& name : a.models)
      for (auto& r : bench_model(a, name)) rows.push_back(std::move(r));
    print_markdown(rows);
    if (!a.csv.empty()) {
      write_csv(a.csv, rows, a);
      std::printf("\nwrote %s\n", a.csv.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_runtime: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
