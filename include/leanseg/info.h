// Per-stage shapes, parameters and FLOPs of a model (`leanseg info`).
#pragma once
#include <string>
#include <vector>

#include "leanseg/model.h"

namespace leanseg {

struct StageSummary {
  std::string name;
  std::vector<int64_t> shape;  // output shape at batch 1
  int64_t params_trainable = 0, params_frozen = 0;
  double flops = 0;
};

struct ModelSummary {
  std::string arch;
  int in_channels = 1, input_height = 0, input_width = 0;
  std::vector<StageSummary> stages;
  int64_t params_total = 0, params_trainable = 0, params_frozen = 0, params_nonzero = 0;
  double flops = 0;
  int64_t fp32_bytes = 0;  // parameters + buffers stored as fp32

  nlohmann::json to_json() const;
  std::string to_table() const;
};

// Runs one recorded forward pass (batch 1, no grad) at H×W. Throws Error if some parameter is
// not covered by a stage (the stage table must partition the model).
ModelSummary summarize(SegmentationModel model, int64_t height, int64_t width);

}  // namespace leanseg
