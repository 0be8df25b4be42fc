// Graph emission for the blocks of the zoo: each emit_* writes the nodes computing one module's
// eval-mode forward and returns the name of the value holding its output. `path` is the
// module's dotted path in the model; it names the nodes and prefixes the initializers.
// Decompositions chosen so that OpenCV 4.6's ONNX importer runs every graph are described in
// docs/onnx.md.
#pragma once
#include <set>
#include <string>
#include <vector>

#include "blocks.h"
#include "decoder_stage.h"
#include "leanseg/graph.h"

namespace leanseg {

class GraphBuilder {
 public:
  explicit GraphBuilder(std::string graph_name);

  void input(GraphValue value);

  // Adds one node with a single output; node and output are both named `name` (made unique).
  std::string node(const std::string& op, const std::string& name, std::vector<std::string> inputs,
                   std::vector<GraphAttribute> attributes = {});
  // Float constant (a copy of `t`, any shape) / int64 vector / float scalar. Returns its name.
  std::string weight(const std::string& name, const torch::Tensor& t);
  std::string ints(const std::string& name, std::vector<int64_t> values);
  std::string scalar(const std::string& name, float value);

  Graph& graph() { return graph_; }
  // Renames the value `from` (a node output) to `to` everywhere.
  void rename_value(const std::string& from, const std::string& to);

 private:
  std::string unique(const std::string& name);
  Graph graph_;
  std::set<std::string> names_;
};

// A module that writes its own graph (a block defined next to its emitter, e.g. resnet.h's
// BasicBlock): emit_module calls it before trying the modules it knows.
class EmitsGraph {
 public:
  virtual ~EmitsGraph() = default;
  virtual std::string emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const = 0;
};

// Any module of the zoo: Seq, Conv2d, ConvTranspose2d, ReLU, ReLU6, Dropout (removed) and the
// blocks of blocks.h / mobilenet_v2.h. Throws Error naming `path` for a module it cannot express.
std::string emit_module(GraphBuilder& g, const torch::nn::Module& m, const std::string& path, const std::string& x);
// Children [begin, end) of a Seq, a Conv followed by BatchNorm2d folded into one Conv.
std::string emit_seq(GraphBuilder& g, const SeqImpl& seq, const std::string& path, const std::string& x,
                     size_t begin = 0, size_t end = SIZE_MAX);
std::string emit_decoder_stage(GraphBuilder& g, const DecoderStageImpl& stage, const std::string& path,
                               const std::string& x, const std::string& skip);
std::string emit_max_pool2(GraphBuilder& g, const std::string& name, const std::string& x);  // k2, s2
// Square max pooling with symmetric padding (padded cells never win): MaxPool k×k, stride, pads.
std::string emit_max_pool(GraphBuilder& g, const std::string& name, const std::string& x, int64_t kernel,
                          int64_t stride, int64_t pad);
// A conv with the BatchNorm that follows it (nullptr: none) folded in.
std::string emit_conv_bn(GraphBuilder& g, const torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl* bn,
                         const std::string& path, const std::string& x);
std::string emit_concat(GraphBuilder& g, const std::string& name, std::vector<std::string> values);  // channels
std::string emit_add(GraphBuilder& g, const std::string& name, const std::string& a, const std::string& b);

}  // namespace leanseg
