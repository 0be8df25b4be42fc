// The `.lsr` runtime model file: what `leanseg export --format runtime` writes and the
// LibTorch-free engine (runtime.h) loads. It is a safetensors file whose tensors are the graph's
// initializers (BatchNorm already folded, Dropout removed) and whose metadata entry
// "leanseg.runtime" holds JSON:
//   {"format": "leanseg-runtime", "version": 1, "graph": {...}, "preprocessing": {...},
//    "config": {...}, "size_divisor": 32, "activation_absmax": {value: max |x|, ...},
//    "checksums": {"algorithm": "fnv1a-64", "metadata": HEX, "tensors": {name: HEX, ...}}}
// The checksums (FNV-1a 64 of each tensor's bytes and of the canonical dump of the rest of the
// metadata) are verified at load; files without them (older writers) load unverified.
// Torch-free and OpenCV-free (standard library + nlohmann-json).
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "leanseg/graph.h"

namespace leanseg {

// Version 2 adds packed low-bit weights; files without them are still written as version 1.
constexpr int kRuntimeFormatVersion = 2;
constexpr const char* kRuntimeMetadataKey = "leanseg.runtime";

// A conv weight stored as per-output-channel affine codes (integer affine quantization over
// axis 0: x̂ = (q − z) · s, codes packed `bits` per element, bit_pack.h). In the file: tensors
// NAME.q_codes (U8), NAME.q_scale (F32 [C]), NAME.q_zero_point (U8 [C]); at load the graph's
// F32 initializer NAME holds the expanded values x̂.
struct PackedWeight {
  int bits = 4;
  std::vector<uint8_t> codes;  // packed
  std::vector<float> scale;
  std::vector<uint8_t> zero_point;
};

struct RuntimeModel {
  Graph graph;                   // fixed input shape [1, C, H, W]; output "logits" [1, 1, H, W]
  nlohmann::json preprocessing;  // Preprocessing::to_json() of the source model
  nlohmann::json config;         // ModelConfig::to_json() of the source model
  int size_divisor = 32;         // H and W must be multiples of it
  // INT8 calibration: graph value name → max |x| over the calibration images. Empty when the
  // file was exported without calibration (the engine then refuses int8).
  std::map<std::string, float> activation_absmax;
  // Initializers stored packed (their F32 values in `graph` are the expanded codes).
  std::map<std::string, PackedWeight> packed_weights;
  // Read from a file whose tensors and metadata carried checksums (all verified); false for
  // files written before checksums existed, and for models that never were a file.
  bool has_checksums = false;
};

// Quantizes every Conv/ConvTranspose weight of `m` to `bits` (8, 4 or 2) per index of axis 0,
// records it in m.packed_weights and replaces the initializer's values with the expanded codes,
// so the model in memory computes exactly what the written file will.
void pack_conv_weights(RuntimeModel& m, int bits);

// Graph ↔ JSON (nodes, attributes, inputs, outputs; initializers are not part of the JSON).
nlohmann::json graph_structure_to_json(const Graph& graph);
// Throws Error naming `where` and the offending node for malformed JSON structure.
Graph graph_structure_from_json(const nlohmann::json& j, const std::string& where);

// The limits the engine relies on (leanseg/limits.h): input channels and size, and every
// Conv, ConvTranspose, MaxPool and Concat attribute of the right kind and in range (strides,
// dilations and kernels >= 1, pads >= 0, concat axes in [-4, 3], groups dividing the weight's
// channels, ...), and every F32 initializer finite (no NaN or infinity). The reader and the writer call it, and so does Engine::from_model for models
// that never were a file. Throws Error starting with `where` and naming the node and attribute.
void check_runtime_graph(const Graph& graph, const std::string& where);

// Serialised bytes / atomic write of a runtime model.
std::vector<unsigned char> serialize_runtime_model(const RuntimeModel& model);
void write_runtime_model(const RuntimeModel& model, const std::string& path);

// Reads and validates: safetensors structure, the metadata entry, format name, version (a
// newer version is refused with a message saying so), graph structure (Graph::validate), every
// initializer present with a matching shape and dtype (F32 or I64), and no unused tensors.
// Errors name the file.
RuntimeModel read_runtime_model(const std::string& path);
RuntimeModel parse_runtime_model(std::vector<unsigned char> bytes, const std::string& label);

}  // namespace leanseg
