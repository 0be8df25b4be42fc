// One U-Net decoder stage: 2× upsample → concat with the (optionally SE-recalibrated) skip →
// a refining block. Used by the MobileNet and efficient U-Nets.
#pragma once
#include "blocks.h"

namespace leanseg {

class DecoderStageImpl : public torch::nn::Module {
 public:
  // `block` maps (up_out + skip) channels to `out`; it is registered as "block".
  DecoderStageImpl(int64_t in, int64_t skip, int64_t out, bool separable_up, bool skip_se,
                   torch::nn::AnyModule block);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& skip);
  // The stage's graph: two inputs, so not an EmitsGraph.
  std::string emit_graph(GraphBuilder& g, const std::string& path, const std::string& x, const std::string& skip) const;

 private:
  Upsample up{nullptr};
  SqueezeExcite skip_se{nullptr};
  torch::nn::AnyModule block_;
};
TORCH_MODULE(DecoderStage);

}  // namespace leanseg
