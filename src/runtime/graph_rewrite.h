// Rewrites an exported graph into the forms the engine runs fastest. The exporter writes a few
// layers in forms that OpenCV 4.6's ONNX importer accepts (docs/onnx.md); for the engine they
// become their plain meaning again, so they can fuse into convolutions:
//   Mul(HardSigmoid(x; α=1/6, β=0), 6)              → Clip(x; min=0, max=6)     (ReLU6)
//   Add(y, Mul(HardSigmoid(y; α=0, β=1), p))         → Add(y, p)                (broadcast add)
// Both are exact. Nodes whose outputs other nodes (or graph outputs) still read are kept.
#pragma once
#include <vector>

#include "leanseg/graph.h"

namespace leanseg::runtime {

// Returns the rewritten node list (topological order kept). `graph` supplies initializers
// (to recognise the constant 6) and outputs.
std::vector<GraphNode> simplify_for_engine(const Graph& graph);

}  // namespace leanseg::runtime
