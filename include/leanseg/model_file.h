// Model files: safetensors holding every parameter and buffer, plus a JSON metadata entry
// ("leanseg") with the architecture config and the preprocessing the model expects, so that
// eval/predict reproduce training's input pipeline without being told.
//
// Compact storage (format version 2, docs/compression.md): the compressible weights (Conv2d,
// ConvTranspose2d, Linear) may be stored as f16, bf16, sparse (non-zero values + a 1-bit mask)
// or affine-quantized codes (8, 4 or 2 bits, packed) with per-tensor or per-channel scale and
// zero point; metadata entry "storage" lists each such tensor's kind. Loading dequantizes to
// fp32 modules. Files without compact storage are still written as version 1.
#pragma once
#include <string>
#include <vector>

#include "leanseg/model.h"
#include "leanseg/preprocessing.h"

namespace leanseg {

constexpr int kModelFormatVersion = 2;

// How save_model stores the compressible weights; every other tensor (biases, normalisation
// parameters and statistics) stays f32.
struct WeightStorage {
  // "f32"; "f16", "bf16"; "sparse" (per tensor only where it is smaller than f32, i.e. for
  // pruned weights); "affine8", "affine4", "affine2" (integer affine quantization).
  std::string kind = "f32";
  bool per_channel = false;  // affine kinds: one scale and zero point per index of axis 0
};
// Throws Error listing the kinds when `kind` is not one of them.
void check_storage_kind(const std::string& kind);

struct LoadedModel {
  SegmentationModel model{nullptr};
  Preprocessing preprocessing;
  nlohmann::json extra;  // free-form provenance (training run, compression steps, ...)
  // Compact storage of the file: {"kind", "per_channel", "tensors": {name: {"kind", ...}}};
  // null for files with every tensor in f32.
  nlohmann::json storage;
};

void save_model(const std::string& path, SegmentationModel model, const Preprocessing& pre,
                const nlohmann::json& extra = nlohmann::json::object(), const WeightStorage& storage = {});
// Opens, validates and rebuilds the model. Throws Error naming the file for bad files,
// unknown architectures, future format versions and tensor mismatches.
LoadedModel load_model(const std::string& path);

// A model by registry name (random init) or by file path.
LoadedModel open_model(const std::string& name_or_path, int in_channels = 1);

}  // namespace leanseg
