// Writes a Graph as an ONNX model (Debian's ONNX library, torch-free). The result is checked
// by onnx::checker and by ONNX's strict shape inference before anything is written.
#pragma once
#include <map>
#include <string>

#include "leanseg/graph.h"

namespace leanseg {

// Opsets this writer supports: every operator it emits is valid from opset 7 on, but 11 is the
// oldest opset the exports are tested against (and what current runtimes validate from); the
// ONNX library (1.12) knows operator sets up to 17.
constexpr int kOnnxMinOpset = 11;
constexpr int kOnnxMaxOpset = 17;
constexpr int kOnnxDefaultOpset = 13;

struct OnnxOptions {
  int opset = kOnnxDefaultOpset;
  std::map<std::string, std::string> metadata;  // metadata_props (e.g. "leanseg" → JSON)
};

// Throws Error when the graph uses an operator the writer does not know, when an operator
// needs a newer opset (naming it and its node), or when `opset` is outside
// [kOnnxMinOpset, kOnnxMaxOpset].
void check_opset(const Graph& graph, int opset);

// The serialized, checked ModelProto. Throws Error with the checker's message if it rejects.
std::string onnx_model_bytes(const Graph& graph, const OnnxOptions& options);

// onnx_model_bytes written atomically to `path`.
void write_onnx(const Graph& graph, const std::string& path, const OnnxOptions& options);

}  // namespace leanseg
