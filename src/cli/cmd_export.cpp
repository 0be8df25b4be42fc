// `leanseg export --model FILE|NAME --format onnx|runtime --out FILE [--opset N] [--dynamic-size]
// [--dynamic-batch] [--input-size N]`: the eval-mode model as a standalone graph, either ONNX for
// other runtimes (ONNX Runtime, TensorRT, OpenCV DNN; docs/onnx.md) or a `.lsr` file for
// leanseg's own LibTorch-free engine (runtime_file.h).
#include <cstdio>

#include "calibration.h"
#include "cli_common.h"
#include "commands.h"
#include "leanseg/error.h"
#include "leanseg/graph_export.h"
#include "leanseg/graph_qdq.h"
#include "leanseg/limits.h"
#include "leanseg/model_file.h"
#include "leanseg/onnx_export.h"
#include "leanseg/runtime_file.h"
#include "leanseg/data.h"
#include "runtime/calibrate.h"


namespace leanseg::cli {
namespace {

struct ExportArgs {
  std::string model, format, out;
  int opset = kOnnxDefaultOpset;
  int input_size = 0;  // 0: the model's preprocessing input size
  int in_channels = 1;
  bool dynamic_size = false, dynamic_batch = false;
  bool opset_given = false;  // --opset on the command line (it has a default)
  std::string calibrate;     // runtime int8 calibration: a dataset folder, "random", or "" (none)
  std::string calibration_split;  // split.json: calibrate on its training images only
  int calibration_images = 16;
  double calibration_percentile = 100;
  bool int8 = false;  // onnx: QDQ (int8 weights; activations too with --calibrate)
  std::string weights = "f32";  // runtime: f32, or int8/int4/int2 packed conv weights
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
  const bool binary = graph.outputs[0].shape[1] == 1;
  std::printf("  input  %s %s float\n  output %s %s float (logits; %s)\n", graph.inputs[0].name.c_str(),
              shape_text(graph.inputs[0]).c_str(), graph.outputs[0].name.c_str(), shape_text(graph.outputs[0]).c_str(),
              binary ? "sigmoid gives the probability" : "softmax over axis 1 gives the class probabilities, argmax the labels");
}

// The runtime engine plans for one input size (and re-plans itself for others), so the graph
// is exported with fixed axes; ONNX-only options are refused rather than silently ignored.
void check_runtime_options(const ExportArgs& a) {
  require_usage(!a.dynamic_size && !a.dynamic_batch,
                "--dynamic-size/--dynamic-batch apply to --format onnx only: runtime files have a fixed input size "
                "and batch 1 (the engine re-plans for other sizes when asked)");
  require_usage(!a.opset_given, "--opset applies to --format onnx only");
  require_usage(!a.int8, "--int8 applies to --format onnx (runtime files are quantized by the engine: --calibrate, then --precision int8)");
}

void check_onnx_options(const ExportArgs& a) {
  require_usage(a.calibrate.empty() || a.int8, "--calibrate with --format onnx needs --int8 (QDQ activations)");
  require_usage(a.weights == "f32", "--weights applies to --format runtime (ONNX: --int8)");
}

std::vector<runtime::PlainTensor> calibration_inputs(const ExportArgs& a, const LoadedModel& m, const Graph& g) {
  return cli::calibration_inputs({a.calibrate, a.calibration_split, a.calibration_images}, m.preprocessing,
                                 g.inputs[0].shape);
}

// INT8 models (weights stored int8 by `leanseg compress --quant int8`) and --int8 export as QDQ:
// int8 conv weights with per-channel scales; with --calibrate also Q/DQ pairs on conv inputs.
void export_onnx(const ExportArgs& a, const LoadedModel& m, const GraphInputShape& shape) {
  Graph graph = model_graph(*m.model, shape);
  const bool int8 = a.int8 || (m.storage.is_object() && m.storage.value("kind", "") == "affine8");
  if (int8) {
    std::map<std::string, float> absmax;
    if (!a.calibrate.empty()) {
      GraphInputShape fixed = shape;  // value names do not depend on the axes being dynamic
      fixed.dynamic_batch = fixed.dynamic_size = false;
      const Graph g = model_graph(*m.model, fixed);
      absmax = runtime::calibrate_activations(g, calibration_inputs(a, m, g), a.calibration_percentile);
    }
    graph = quantize_qdq(graph, absmax);
    auto ops = graph.op_counts();
    const int activations = ops["QuantizeLinear"], weights = ops["DequantizeLinear"] - activations;
    if (absmax.empty())
      std::printf("int8 QDQ: %d conv weights int8 per output channel (activations float: --calibrate DIR adds Q/DQ pairs)\n", weights);
    else
      std::printf("int8 QDQ: %d conv weights int8 per output channel, %d activations int8 (calibrated on %s)\n", weights,
                  activations, a.calibrate.c_str());
  }
  OnnxOptions options;
  options.opset = a.opset;
  options.metadata["leanseg"] = nlohmann::json{{"config", m.model->config().to_json()},
                                               {"preprocessing", m.preprocessing.to_json()},
                                               {"source", a.model},
                                               {"int8_qdq", int8}}
                                    .dump();
  write_onnx(graph, a.out, options);
  print_summary(graph, a.out, a.opset);
}

void export_runtime(const ExportArgs& a, const LoadedModel& m, const GraphInputShape& shape) {
  RuntimeModel rt;
  rt.graph = model_graph(*m.model, shape);
  if (a.weights != "f32") {  // packed first: calibration then sees the weights the file holds
    const int bits = a.weights == "int8" ? 8 : a.weights == "int4" ? 4 : a.weights == "int2" ? 2 : 0;
    require_usage(bits != 0, "--weights '" + a.weights + "': expected f32, int8, int4 or int2");
    pack_conv_weights(rt, bits);
    std::printf("conv weights stored as %d-bit codes per output channel (%zu tensors), expanded at load\n", bits,
                rt.packed_weights.size());
  }
  if (!a.calibrate.empty()) {
    rt.activation_absmax = runtime::calibrate_activations(rt.graph, calibration_inputs(a, m, rt.graph),
                                                          a.calibration_percentile);
    std::printf("calibrated %zu activations for int8 on %s (%s)\n", rt.activation_absmax.size(), a.calibrate.c_str(),
                a.calibration_percentile < 100 ? ("percentile " + std::to_string(a.calibration_percentile)).c_str()
                                               : "max |x|");
  }
  rt.preprocessing = m.preprocessing.to_json();
  rt.config = m.model->config().to_json();
  rt.size_divisor = m.model->size_divisor();
  write_runtime_model(rt, a.out);
  const Graph& g = rt.graph;
  std::printf("wrote %s: leanseg runtime v%d, %zu nodes (%s), %lld parameters, input %s\n", a.out.c_str(),
              rt.packed_weights.empty() ? 1 : kRuntimeFormatVersion, g.nodes.size(), op_counts_text(g).c_str(),
              static_cast<long long>(g.parameter_count()), shape_text(g.inputs[0]).c_str());
}

void run_export(const ExportArgs& a) {
  require_usage(a.format == "onnx" || a.format == "runtime", "--format: unknown format '" + a.format + "' (onnx, runtime)");
  if (a.format == "runtime") check_runtime_options(a);
  else check_onnx_options(a);
  require_usage(a.input_size >= 0, "--input-size must be positive, got " + std::to_string(a.input_size));
  // Before the model is even loaded: the engine would refuse the file (and a graph of that size
  // takes minutes to build before running out of memory). Model files' sizes are checked at load.
  if (a.input_size > 0)
    cli_conventions::as_usage_error([&] { check_image_size(a.input_size, a.input_size, "--input-size"); });
  require_usage(a.format == "runtime" || (a.opset >= kOnnxMinOpset && a.opset <= kOnnxMaxOpset),
                "--opset " + std::to_string(a.opset) + ": outside the supported range " + std::to_string(kOnnxMinOpset) +
                    "–" + std::to_string(kOnnxMaxOpset));
  const LoadedModel m = open_model(a.model, a.in_channels);
  const int64_t divisor = m.model->size_divisor();
  require_usage(a.input_size % divisor == 0, "--input-size " + std::to_string(a.input_size) +
                                                 " must be a positive multiple of " + std::to_string(divisor) +
                                                 " (the model's size divisor)");
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
  add_model_option(cmd, args->model, ModelArg::FileOrName, &args->in_channels)->required();
  cmd->add_option("--format", args->format,
                  "Output format: onnx, or runtime (.lsr for leanseg-infer, LibTorch-free)")
      ->required();
  cmd->add_option("--out,-o", args->out, "Output file, e.g. model.onnx or model.lsr")->required();
  auto* opset = cmd->add_option("--opset", args->opset, "ONNX opset (" + std::to_string(kOnnxMinOpset) + "–" +
                                                            std::to_string(kOnnxMaxOpset) + "; onnx only)")
                    ->capture_default_str();
  cmd->add_option("--input-size", args->input_size,
                  "Square input size of the fixed axes (default: the model's preprocessing input size)");
  cmd->add_flag("--dynamic-size", args->dynamic_size,
                "Height and width as dynamic axes (multiples of 32 at run time; onnx only)");
  cmd->add_option("--calibrate", args->calibrate,
                  "record activation ranges for int8 (runtime; onnx with --int8) on images of this dataset folder "
                  "(or 'random': normal noise, for benchmarking untrained models only)");
  cmd->add_option("--calibration-split", args->calibration_split,
                  "runtime: a run's split.json: calibrate on its training images only (keeps validation unseen)");
  cmd->add_option("--calibration-images", args->calibration_images, "runtime: images used to calibrate")
      ->capture_default_str();
  cmd->add_option("--calibration-percentile", args->calibration_percentile,
                  "runtime: percentile of |x| the int8 range covers (100 = max)")
      ->capture_default_str();
  cmd->add_flag("--dynamic-batch", args->dynamic_batch, "Batch as a dynamic axis (default: batch 1; onnx only)");
  cmd->add_option("--weights", args->weights,
                  "runtime: conv weights stored as f32, or int8/int4/int2 codes per output channel (packed, "
                  "expanded at load: a smaller file)")
      ->capture_default_str();
  cmd->add_flag("--int8", args->int8,
                "onnx: QDQ int8 export (int8 conv weights per channel; with --calibrate also activations). "
                "Automatic for models stored int8 (leanseg compress --quant int8)");
  cmd->callback([args, opset] {
    args->opset_given = opset->count() > 0;
    run_export(*args);
  });
}

}  // namespace leanseg::cli
