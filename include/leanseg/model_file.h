// Model files: safetensors holding every parameter and buffer, plus a JSON metadata entry
// ("leanseg") with the architecture config and the preprocessing the model expects, so that
// eval/predict reproduce training's input pipeline without being told.
#pragma once
#include <string>
#include <vector>

#include "leanseg/model.h"
#include "leanseg/preprocessing.h"

namespace leanseg {

constexpr int kModelFormatVersion = 1;

struct LoadedModel {
  SegmentationModel model{nullptr};
  Preprocessing preprocessing;
  nlohmann::json extra;  // free-form provenance (training run, compression steps, ...)
};

void save_model(const std::string& path, SegmentationModel model, const Preprocessing& pre,
                const nlohmann::json& extra = nlohmann::json::object());
// Opens, validates and rebuilds the model. Throws Error naming the file for bad files,
// unknown architectures, future format versions and tensor mismatches.
LoadedModel load_model(const std::string& path);

// A model by registry name (random init) or by file path.
LoadedModel open_model(const std::string& name_or_path, int in_channels = 1);

}  // namespace leanseg
