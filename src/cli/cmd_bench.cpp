// `leanseg bench --data DIR [--split RUN/split.json] --out DIR [--model FILE]... [--variants-of FILE]
//  [--quant LIST] [--prune LIST] [--structured LIST] [--runtime LIST] [--runs N]`: the framework
// seed's comparison table. Every row is measured, none inferred from bit-widths or sparsity:
// accuracy by `leanseg eval` on the data, params/FLOPs/file size of the real file, latency and
// peak memory of batch-1 inference in a fresh process per row (`leanseg latency` for LibTorch,
// `leanseg-infer --bench` for the runtime), so one row's memory never inflates another's.
// Writes OUT/bench.md, OUT/bench.csv, OUT/bench.png; variants and exports go to OUT/models.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli_common.h"
#include "commands.h"
#include "leanseg/bench_report.h"
#include "leanseg/compress.h"
#include "leanseg/error.h"
#include "leanseg/fs.h"
#include "leanseg/model_file.h"
#include "leanseg/process.h"

namespace leanseg::cli {
namespace {
namespace fs = std::filesystem;

struct BenchArgs {
  std::string data, dataset = "auto", split, subset = "val", out, variants_of;
  std::vector<std::string> models;
  std::string quant = "fp16,bf16,int8,int4,int2", prune = "0.3,0.5,0.7,0.9", structured = "0.3",
              runtime = "fp32,bf16,int8";
  bool per_tensor = false, runtime_models = false, no_libtorch_int8 = false;
  int runs = 20, threads = -1;  // -1: the top-level --threads
};

// One row to measure: a model file run by LibTorch or its .lsr export run by the runtime.
struct Job {
  BenchRow row;
  std::string file;  // model file (LibTorch) or .lsr (runtime)
};

class Runner {
 public:
  explicit Runner(const BenchArgs& a) : a_(a), logs_(a.out + "/logs"), bin_(executable_dir()) {
    fs::create_directories(logs_);
    require(fs::exists(bin_ + "/leanseg-infer") || a.runtime.empty(),
            "bench: leanseg-infer was not found next to leanseg (" + bin_ + "); build it or pass --runtime ''");
  }

  // Runs a leanseg sub-command (or leanseg-infer) with stdout to logs/NAME.out; throws with the
  // log when it fails. Returns stdout.
  std::string run(const std::string& name, std::vector<std::string> args, bool infer = false) const {
    args.insert(args.begin(), infer ? bin_ + "/leanseg-infer" : bin_ + "/leanseg");
    if (!infer && a_.threads > 0) args.insert(args.begin() + 1, {"--threads", std::to_string(a_.threads)});
    const std::string out = logs_ + "/" + name + ".out", err = logs_ + "/" + name + ".log";
    const int status = run_process(args, out, err);
    if (!exited_ok(status)) {
      std::string cmd;
      for (const auto& s : args) cmd += (cmd.empty() ? "" : " ") + s;
      throw Error("bench: '" + cmd + "' failed (" + status_text(status) + "); see " + err + ":\n" + tail(err));
    }
    return read(out);
  }

  nlohmann::json run_json(const std::string& name, const std::vector<std::string>& args, bool infer = false) const {
    const std::string text = run(name, args, infer);
    try {
      return nlohmann::json::parse(text);
    } catch (const std::exception& e) {
      throw Error("bench: " + name + " printed no valid JSON (" + e.what() + ")");
    }
  }

 private:
  static std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static std::string tail(const std::string& path) {
    const std::string t = read(path);
    return t.size() > 2000 ? t.substr(t.size() - 2000) : t;
  }
  const BenchArgs& a_;
  std::string logs_, bin_;
};

std::string model_label(const std::string& arch) {
  static const std::map<std::string, std::string> ids = {{"mobilenet-aspp-se-unet", "M1"}, {"mobilenet-aspp-se-unet-lite", "M4"},
                                                         {"unet", "M2"}, {"unet-32", "M2"}, {"efficient-unet", "M3"}};
  auto it = ids.find(arch);
  return (it == ids.end() ? "" : it->second + " ") + arch;
}

std::string slug(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
  return out;
}

double number_or_nan(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
}

std::vector<std::string> list(const std::string& csv) { return split_channels(csv); }

// Rows of one model file: LibTorch, plus the runtime at each precision (exported once).
void add_model_rows(std::vector<Job>& jobs, const std::string& file, const std::string& variant, bool with_runtime,
                    const BenchArgs& a, const Runner& run) {
  const LoadedModel m = load_model(file);
  Job j;
  j.file = file;
  j.row.model = model_label(m.model->config().arch);
  const std::string described = describe_compression(m);
  j.row.variant = !variant.empty() ? variant : described.empty() ? "fp32" : described;
  j.row.engine = "LibTorch";
  jobs.push_back(j);
  if (variant == "fp32" && !a.no_libtorch_int8 && !a.split.empty()) {  // LibTorch's quantized kernels
    Job q = j;
    q.row.precision = "int8";
    jobs.push_back(q);
  }
  if (!with_runtime || a.runtime.empty()) return;
  const std::string lsr = a.out + "/models/" + fs::path(file).stem().string() + ".lsr";
  std::vector<std::string> exp = {"export", "--model", file, "--format", "runtime", "--out", lsr};
  if (a.runtime.find("int8") != std::string::npos) {
    exp.insert(exp.end(), {"--calibrate", a.data});
    if (!a.split.empty()) exp.insert(exp.end(), {"--calibration-split", a.split});
  }
  run.run("export-" + slug(fs::path(file).stem().string()), exp);
  for (const auto& p : list(a.runtime)) {
    Job r = j;
    r.file = lsr;
    r.row.engine = "runtime";
    r.row.precision = p;
    jobs.push_back(r);
  }
}

// Variants of `base` made by `leanseg compress` without fine-tuning.
void add_variants(std::vector<Job>& jobs, const BenchArgs& a, const Runner& run) {
  const std::string dir = a.out + "/models/";
  const std::string stem = fs::path(a.variants_of).stem().string();
  add_model_rows(jobs, a.variants_of, "fp32", true, a, run);
  for (const auto& q : list(a.quant)) {
    const std::string out = dir + stem + "-" + q + ".safetensors";
    std::vector<std::string> args = {"compress", "--model", a.variants_of, "--out", out, "--quant", q};
    const bool integer = q.rfind("int", 0) == 0;
    if (integer && !a.per_tensor) args.push_back("--per-channel");
    run.run("compress-" + q, args);
    add_model_rows(jobs, out, q + (integer ? (a.per_tensor ? " weights" : " weights per channel") : " weights"), false, a, run);
  }
  for (const auto& p : list(a.prune)) {
    const std::string out = dir + stem + "-magnitude" + p + ".safetensors";
    run.run("compress-magnitude" + p, {"compress", "--model", a.variants_of, "--out", out, "--prune", "magnitude:" + p});
    add_model_rows(jobs, out, "magnitude " + p + " (sparse file, no fine-tuning)", false, a, run);
  }
  for (const auto& p : list(a.structured)) {
    const std::string out = dir + stem + "-structured" + p + ".safetensors";
    run.run("compress-structured" + p, {"compress", "--model", a.variants_of, "--out", out, "--prune", "structured:" + p});
    add_model_rows(jobs, out, "structured " + p + " (no fine-tuning)", true, a, run);
  }
}

void measure(Job& j, const BenchArgs& a, const Runner& run, const std::string& name) {
  std::vector<std::string> eval = {"eval", "--model", j.file, "--data", a.data, "--dataset", a.dataset, "--json"};
  if (!a.split.empty()) eval.insert(eval.end(), {"--split", a.split, "--subset", a.subset});
  if (j.row.engine == "runtime" || j.row.precision == "int8") eval.insert(eval.end(), {"--precision", j.row.precision});
  const auto e = run.run_json("eval-" + name, eval);
  j.row.dice = number_or_nan(e, "dice"), j.row.iou = number_or_nan(e, "iou"), j.row.hc_mae_mm = number_or_nan(e, "hc_mae_mm");
  j.row.params = e.value("params_total", int64_t{0}), j.row.params_nonzero = e.value("params_nonzero", int64_t{0});
  j.row.flops = number_or_nan(e, "flops");
  j.row.file_bytes = static_cast<int64_t>(fs::file_size(j.file));
  const std::string runs = std::to_string(a.runs);
  const auto t = j.row.engine == "runtime"
                     ? run.run_json("latency-" + name, {j.file, "--bench", "--precision", j.row.precision, "--runs", runs,
                                                        "--threads", std::to_string(a.threads), "--json"}, true)
                     : run.run_json("latency-" + name, {"latency", "--model", j.file, "--runs", runs, "--precision",
                                                        j.row.precision, "--json"});
  j.row.latency_median_ms = number_or_nan(t, "median_ms"), j.row.latency_p90_ms = number_or_nan(t, "p90_ms");
  j.row.throughput = number_or_nan(t, "throughput");
  j.row.peak_rss_bytes = t.value("peak_rss_bytes", int64_t{0});
}

void run_bench(const BenchArgs& a) {
  require_usage(!a.models.empty() || !a.variants_of.empty(), "bench: give --model FILE and/or --variants-of FILE");
  for (const auto& f : a.models) require(fs::exists(f), "bench: model file '" + f + "' does not exist");
  require(a.variants_of.empty() || fs::exists(a.variants_of), "bench: model file '" + a.variants_of + "' does not exist");
  fs::create_directories(a.out + "/models");
  const Runner run(a);
  std::vector<Job> jobs;
  if (!a.variants_of.empty()) add_variants(jobs, a, run);
  for (const auto& f : a.models) add_model_rows(jobs, f, "", a.runtime_models, a, run);
  // FLOPs of a runtime row are those of the LibTorch model it was exported from.
  std::vector<BenchRow> rows;
  for (size_t i = 0; i < jobs.size(); ++i) {
    Job& j = jobs[i];
    std::cerr << "[" << (i + 1) << "/" << jobs.size() << "] " << j.row.model << " | " << j.row.variant << " | "
              << j.row.engine << (j.row.engine == "runtime" ? " " + j.row.precision : "") << "\n";
    measure(j, a, run, std::to_string(i + 1));
    if (j.row.engine == "runtime")
      for (const auto& r : rows)
        if (r.engine == "LibTorch" && r.model == j.row.model && std::isnan(j.row.flops) && r.params == j.row.params)
          j.row.flops = r.flops;
    rows.push_back(j.row);
    // The table so far, so an interrupted bench keeps what it measured.
    atomic_write(a.out + "/bench.csv", [&](std::ostream& o) { o << bench_csv(rows); });
  }
  const std::string md = bench_markdown(rows);
  atomic_write(a.out + "/bench.md", [&](std::ostream& o) { o << md; });
  bench_plot(rows, a.out + "/bench.png", "Dice vs latency (marker size: file size)");
  std::cout << md << "\nwrote " << a.out << "/bench.md, bench.csv, bench.png\n";
}

}  // namespace

void add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "Measure models and compressed variants: the comparison table (Markdown, CSV, plot)");
  add_dataset_options(cmd, a->data, a->dataset, "to score on")->required();
  add_split_options(cmd, a->split, a->subset);
  cli_conventions::add_out_option(*cmd, a->out, "Output folder (bench.md, bench.csv, bench.png, models/, logs/)")->required();
  add_model_files_option(cmd, a->models, "measured as they are, e.g. baselines or compressed files");
  cmd->add_option("--variants-of", a->variants_of, "Model file whose quantized and pruned variants are generated and measured");
  cmd->add_option("--quant", a->quant, "Weight quantizations of --variants-of ('' = none)")->capture_default_str();
  cmd->add_flag("--per-tensor", a->per_tensor, "int8/4/2 variants per tensor (default: per channel)");
  cmd->add_option("--prune", a->prune, "Magnitude sparsities of --variants-of ('' = none)")->capture_default_str();
  cmd->add_option("--structured", a->structured, "Structured pruning ratios of --variants-of ('' = none)")->capture_default_str();
  cmd->add_option("--runtime", a->runtime, "Runtime precisions measured for --variants-of and its structured variants ('' = none)")
      ->capture_default_str();
  cmd->add_flag("--runtime-models", a->runtime_models, "Also measure every --model file in the runtime");
  cmd->add_flag("--no-libtorch-int8", a->no_libtorch_int8,
                "Skip the row of the --variants-of model on LibTorch's quantized int8 kernels (needs --split)");
  cmd->add_option("--runs", a->runs, "Timed batch-1 runs per row")->check(CLI::Range(1, 100000))->capture_default_str();
  // Its name before --threads was one option everywhere: hidden (empty group), kept for old scripts.
  cmd->add_option("--bench-threads", a->threads, "Deprecated: --threads N")->check(CLI::Range(0, 1024))->group("");
  cmd->callback([a] {
    if (a->threads < 0) a->threads = threads_option();
    run_bench(*a);
  });
}

}  // namespace leanseg::cli
