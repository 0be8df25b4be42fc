// The vocabulary of graph emission: the builder, the interface every block of the zoo
// implements to write its own graph (EmitsGraph, next to the block's forward), and emitters for
// LibTorch's own layers, which cannot implement it. Each emitter writes the nodes computing one
// module's eval-mode forward and returns the name of the value holding its output. `path` is the
// module's dotted path in the model; it names the nodes and prefixes the initializers.
// Decompositions chosen so that OpenCV 4.6's ONNX importer runs every graph are described in
// docs/onnx.md.
#pragma once
#include <torch/torch.h>

#include <set>
#include <string>
#include <vector>

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

// A block that writes its own graph (every block of blocks.h, mobilenet_v2.h, resnet.h): a new
// block implements this beside its forward, and export finds it through emit_module.
class EmitsGraph {
 public:
  virtual ~EmitsGraph() = default;
  virtual std::string emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const = 0;
};

class SeqImpl;  // blocks.h

// Any module of the zoo: an EmitsGraph block, a Seq, or one of LibTorch's Conv2d,
// ConvTranspose2d, ReLU, ReLU6, Dropout (removed). Throws Error naming `path` for a module it
// cannot express.
std::string emit_module(GraphBuilder& g, const torch::nn::Module& m, const std::string& path, const std::string& x);
// Children [begin, end) of a Seq, a Conv followed by BatchNorm2d folded into one Conv.
std::string emit_seq(GraphBuilder& g, const SeqImpl& seq, const std::string& path, const std::string& x,
                     size_t begin = 0, size_t end = SIZE_MAX);
std::string emit_max_pool2(GraphBuilder& g, const std::string& name, const std::string& x);  // k2, s2
// Square max pooling with symmetric padding (padded cells never win): MaxPool k×k, stride, pads.
std::string emit_max_pool(GraphBuilder& g, const std::string& name, const std::string& x, int64_t kernel,
                          int64_t stride, int64_t pad);
// A conv with the BatchNorm that follows it (nullptr: none) folded in.
std::string emit_conv_bn(GraphBuilder& g, const torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl* bn,
                         const std::string& path, const std::string& x);
// Convolution weights with an optional following BatchNorm folded in (computed in double):
// W' = W·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β. `bias` is undefined when there is none.
struct ConvWeights {
  torch::Tensor weight, bias;
};
ConvWeights fold_batch_norm(const torch::nn::Conv2dImpl& conv, const torch::nn::BatchNorm2dImpl* bn,
                            const std::string& path);
// A conv with `conv`'s geometry and the given weights (e.g. a slice of its input channels).
std::string emit_conv_weights(GraphBuilder& g, const torch::nn::detail::ConvNdOptions<2>& o, const ConvWeights& cw,
                              const std::string& path, const std::string& x);
std::string emit_conv_transpose(GraphBuilder& g, const torch::nn::ConvTranspose2dImpl& conv, const std::string& path,
                                const std::string& x);
// A Linear layer applied to pooled [N, C, 1, 1] features, as a 1×1 convolution.
std::string emit_linear_as_conv(GraphBuilder& g, const torch::nn::LinearImpl& fc, const std::string& path,
                                const std::string& x);
std::string emit_concat(GraphBuilder& g, const std::string& name, std::vector<std::string> values);  // channels
std::string emit_add(GraphBuilder& g, const std::string& name, const std::string& a, const std::string& b);

}  // namespace leanseg
