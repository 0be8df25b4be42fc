// A LibTorch model as a torch-free Graph (graph.h): the eval-mode forward pass with BatchNorm
// folded into the preceding convolutions and Dropout removed. Nodes and initializers are
// named after the module paths they come from (e.g. `dec5.block.body.0.0.weight`); the input
// is `image` [N, C, H, W] float and the output `logits` [N, K, H, W] (K = 1 for binary models).
#pragma once
#include "leanseg/graph.h"
#include "leanseg/model.h"

namespace leanseg {

struct GraphInputShape {
  int64_t height = 256, width = 256;  // used for the fixed axes
  bool dynamic_batch = false;         // batch axis "batch" instead of 1
  bool dynamic_size = false;          // axes "height", "width" instead of height, width
};

// Throws Error when the size is not a positive multiple of the model's size divisor, or when
// the model contains a layer the exporter cannot express.
Graph model_graph(const SegmentationModelImpl& model, const GraphInputShape& shape);

}  // namespace leanseg
