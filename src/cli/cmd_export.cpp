// `leanseg export --model FILE|NAME --format onnx|runtime --out FILE [--opset N] [--dynamic-size]
// [--dynamic-batch] [--input-size N]`: the eval-mode model as a standalone graph, either ONNX for
// other runtimes (ONNX Runtime, TensorRT, OpenCV DNN; docs/onnx.md) or a `.lsr` file for
// leanseg's own LibTorch-free engine (runtime_file.h).
#include <cstdio>

#include "commands.h"
#include "leanseg/error.h"
#include "leanseg/graph_export.h"
#include "leanseg/model_file.h"
#include "leanseg/onnx_export.h"
#include "leanseg/runtime_file.h"

namespace leanseg::cli {
namespace {

struct ExportArgs {
  std::string model, format, out;
  int opset = kOnnxDefaultOpset;
  int input_size = 0;  // 0: the model's preprocessing input size
  int in_channels = 1;
  bool dynamic_size = false, dynamic_batch = false;
  bool opset_given = false;  // --opset on the command line (it has a default)
};

std::string shape_text(const GraphValue& v) {
  std::string s;
  for (size_t i = 0; i < v.shape.size(); ++i)
    s += (i ? ", " : "") + (v.dim_names[i].empty() ? std::to_string(v.shape[i]) : v.dim_names[i]);
  return "[" + s + "]";
}

std::string op_counts_text(const Graph& graph) {
  std::string ops;
  for (const auto& [op, n] : graph.op_counts()) ops += (ops.empty() ? "" : ", ") + op + " " + std::to_string(n);
  return ops;
}

void print_summary(const Graph& graph, const std::string& path, int opset) {
  std::printf("wrote %s: ONNX opset %d, %zu nodes (%s), %lld parameters\n", path.c_str(), opset, graph.nodes.size(),
              op_counts_text(graph).c_str(), static_cast<long long>(graph.parameter_count()));
  std::printf("  input  %s %s float\n  output %s %s float (logits; sigmoid gives the probability)\n",
              graph.inputs[0].name.c_str(), shape_text(graph.inputs[0]).c_str(), graph.outputs[0].name.c_str(),
              shape_text(graph.outputs[0]).c_str());
}

void export_onnx(const ExportArgs& a, const LoadedModel& m, const GraphInputShape& shape) {
  const Graph graph = model_graph(*m.model, shape);
  OnnxOptions options;
  options.opset = a.opset;
  options.metadata["leanseg"] = nlohmann::json{{"config", m.model->config().to_json()},
                                               {"preprocessing", m.preprocessing.to_json()},
                                               {"source", a.model}}
                                    .dump();
  write_onnx(graph, a.out, options);
  print_summary(graph, a.out, a.opset);
}

// The runtime engine plans for one input size (and re-plans itself for others), so the graph
// is exported with fixed axes; ONNX-only options are refused rather than silently ignored.
void check_runtime_options(const ExportArgs& a) {
  require(!a.dynamic_size && !a.dynamic_batch,
          "--dynamic-size/--dynamic-batch apply to --format onnx only: runtime files have a fixed input size "
          "and batch 1 (the engine re-plans for other sizes when asked)");
  require(!a.opset_given, "--opset applies to --format onnx only");
}

void export_runtime(const ExportArgs& a, const LoadedModel& m, const GraphInputShape& shape) {
  RuntimeModel rt;
  rt.graph = model_graph(*m.model, shape);
  rt.preprocessing = m.preprocessing.to_json();
  rt.config = m.model->config().to_json();
  rt.size_divisor = m.model->size_divisor();
  write_runtime_model(rt, a.out);
  const Graph& g = rt.graph;
  std::printf("wrote %s: leanseg runtime v%d, %zu nodes (%s), %lld parameters, input %s\n", a.out.c_str(),
              kRuntimeFormatVersion, g.nodes.size(), op_counts_text(g).c_str(),
              static_cast<long long>(g.parameter_count()), shape_text(g.inputs[0]).c_str());
}

void run_export(const ExportArgs& a) {
  require(a.format == "onnx" || a.format == "runtime", "--format: unknown format '" + a.format + "' (onnx, runtime)");
  if (a.format == "runtime") check_runtime_options(a);
  require(a.input_size >= 0, "--input-size must be positive, got " + std::to_string(a.input_size));
  const LoadedModel m = open_model(a.model, a.in_channels);
  GraphInputShape shape;
  shape.height = a.input_size > 0 ? a.input_size : m.preprocessing.input_height;
  shape.width = a.input_size > 0 ? a.input_size : m.preprocessing.input_width;
  shape.dynamic_batch = a.dynamic_batch;
  shape.dynamic_size = a.dynamic_size;
  if (a.format == "runtime") export_runtime(a, m, shape);
  else export_onnx(a, m, shape);
}

}  // namespace

void add_export(CLI::App& app) {
  auto args = std::make_shared<ExportArgs>();
  auto* cmd = app.add_subcommand("export", "Export a model for other runtimes (ONNX) or leanseg's runtime (.lsr)");
  cmd->add_option("--model,-m", args->model, "Model file or registry name (random weights)")->required();
  cmd->add_option("--format", args->format,
                  "Output format: onnx, or runtime (.lsr for leanseg-infer, LibTorch-free)")
      ->required();
  cmd->add_option("--out,-o", args->out, "Output file, e.g. model.onnx or model.lsr")->required();
  auto* opset = cmd->add_option("--opset", args->opset, "ONNX opset (" + std::to_string(kOnnxMinOpset) + "–" +
                                                            std::to_string(kOnnxMaxOpset) + "; onnx only)")
                    ->capture_default_str();
  cmd->add_option("--input-size", args->input_size,
                  "Square input size of the fixed axes (default: the model's preprocessing input size)");
  cmd->add_option("--in-channels", args->in_channels, "Input channels when --model is a name")->capture_default_str();
  cmd->add_flag("--dynamic-size", args->dynamic_size,
                "Height and width as dynamic axes (multiples of 32 at run time; onnx only)");
  cmd->add_flag("--dynamic-batch", args->dynamic_batch, "Batch as a dynamic axis (default: batch 1; onnx only)");
  cmd->callback([args, opset] {
    args->opset_given = opset->count() > 0;
    run_export(*args);
  });
}

}  // namespace leanseg::cli
