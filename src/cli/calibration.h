// Calibration inputs for int8 activation ranges, shared by `export` (runtime files, ONNX QDQ),
// `eval --precision int8` and `latency --precision int8` (LibTorch's quantized kernels).
#pragma once
#include <string>
#include <vector>

#include "leanseg/model_file.h"
#include "leanseg/preprocessing.h"
#include "leanseg/quantized_libtorch.h"
#include "runtime/reference.h"  // PlainTensor

namespace leanseg::cli {

struct CalibrationSource {
  std::string data;   // a dataset folder, or "random" (standard-normal inputs: benchmarking only)
  std::string split;  // split.json: calibrate on its training images only ("" = every image)
  int images = 16;
};

// Up to `source.images` normalised inputs of `shape` [1, C, H, W], spread deterministically over
// the pool of images: each brought to H×W the way inference does it (resize mode: resized;
// pad/tile modes: a centred crop, zero-padded if smaller). Throws Error naming the problem.
std::vector<runtime::PlainTensor> calibration_inputs(const CalibrationSource& source, const Preprocessing& pre,
                                                     const std::vector<int64_t>& shape);

// LibTorch's quantized-kernel int8 model of `m` (its graph with dynamic height/width, so any
// size runs), calibrated on inputs of the model's input size (256² when it has none).
LibTorchInt8Model libtorch_int8_model(const LoadedModel& m, const CalibrationSource& source, const std::string& engine);

}  // namespace leanseg::cli
