// Rewrites an exported graph into the forms the engine runs fastest. The exporter writes a few
// layers in forms that OpenCV 4.6's ONNX importer accepts (docs/onnx.md); for the engine they
// become their plain meaning again, so they can fuse into convolutions:
//   Mul(HardSigmoid(x; α=1/6, β=0), 6)              → Clip(x; min=0, max=6)     (ReLU6)
//   Add(y, Mul(HardSigmoid(y; α=0, β=1), p))         → Add(y, p)                (broadcast add)
// and one for speed:
//   ConvTranspose(k 2, s 2, no pad, 1 group) → 1×1 Conv to 4·C channels + DepthToSpace(2, DCR)
// (each output pixel of a stride-2, kernel-2 transposed conv sees exactly one input pixel, so it
// is a GEMM followed by a pixel shuffle; oneDNN's transposed-conv kernels are much slower),
//   depthwise ConvTranspose(k 2, s 2, no pad)  → DepthwiseUpsample2x (the engine's own kernel;
//                                                 an internal op, not ONNX)
// All are exact. Nodes whose outputs other nodes (or graph outputs) still read are kept.
#pragma once
#include <vector>

#include "leanseg/graph.h"

namespace leanseg::runtime {

struct SimplifiedGraph {
  std::vector<GraphNode> nodes;           // topological order kept
  std::vector<GraphTensor> new_constants;  // weights of rewritten layers
};

// `graph` supplies initializers (to recognise the constant 6, to rearrange weights) and outputs.
SimplifiedGraph simplify_for_engine(const Graph& graph);

}  // namespace leanseg::runtime
