#include "decoder_stage.h"

namespace leanseg {

DecoderStageImpl::DecoderStageImpl(int64_t in, int64_t skip, int64_t out, bool separable_up, bool use_skip_se,
                                   torch::nn::AnyModule block)
    : block_(std::move(block)) {
  up = register_module("up", Upsample(in, out, separable_up));
  if (use_skip_se) skip_se = register_module("skip_se", SqueezeExcite(skip));
  register_module("block", block_.ptr());
}

torch::Tensor DecoderStageImpl::forward(const torch::Tensor& x, const torch::Tensor& skip) {
  auto s = skip_se ? skip_se(skip) : skip;
  return block_.forward(torch::cat({up(x), s}, 1));
}

std::string DecoderStageImpl::emit_graph(GraphBuilder& g, const std::string& path, const std::string& x,
                                         const std::string& skip) const {
  const auto upsampled = up->emit_graph(g, path + ".up", x);
  const auto s = skip_se ? skip_se->emit_graph(g, path + ".skip_se", skip) : skip;
  return emit_module(g, *block_.ptr(), path + ".block", emit_concat(g, path + "/concat", {upsampled, s}));
}

}  // namespace leanseg
