// Every block of the zoo writes its own graph (EmitsGraph, beside its forward): each one alone,
// in eval mode with non-trivial BatchNorm statistics, run through the reference interpreter,
// matches its LibTorch forward. A new block is added to this table with its emitter.
#include <gtest/gtest.h>

#include <functional>
#include <type_traits>

#include "leanseg/error.h"
#include "model_test_util.h"
#include "models/blocks.h"
#include "models/decoder_stage.h"
#include "models/mobilenet_v2.h"
#include "models/resnet.h"
#include "runtime/reference.h"
#include "test_util.h"

namespace leanseg {
namespace {

using runtime::PlainTensor;

static_assert(std::is_base_of_v<EmitsGraph, SqueezeExciteImpl> && std::is_base_of_v<EmitsGraph, ResidualBlockSEImpl> &&
              std::is_base_of_v<EmitsGraph, UpsampleImpl> && std::is_base_of_v<EmitsGraph, AsppImpl> &&
              std::is_base_of_v<EmitsGraph, BottleneckBlockImpl> && std::is_base_of_v<EmitsGraph, LinearAttentionImpl> &&
              std::is_base_of_v<EmitsGraph, InvertedResidualImpl> && std::is_base_of_v<EmitsGraph, BasicBlockImpl>,
              "every block of the zoo writes its own graph");

PlainTensor from_torch(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return PlainTensor::floats(c.sizes().vec(), std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel()));
}

torch::Tensor to_torch(const PlainTensor& t) {
  return torch::from_blob(const_cast<float*>(t.f32.data()), t.shape, torch::kFloat32).clone();
}

struct Block {
  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
};

struct BlockCase {
  std::string name;
  int64_t channels;  // of the input, at 16x16
  std::function<Block()> make;
};

std::ostream& operator<<(std::ostream& os, const BlockCase& c) { return os << c.name; }

class BlockGraph : public ::testing::TestWithParam<BlockCase> {};

TEST_P(BlockGraph, ReferenceRunOfItsGraphMatchesItsForward) {
  const BlockCase& c = GetParam();
  const Block block = c.make();
  test::randomize_weights(*block.module, 11);
  block.module->eval();
  torch::manual_seed(5);
  const torch::Tensor x = torch::randn({2, c.channels, 16, 16});
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = block.forward(x);
  }
  GraphBuilder g(c.name);
  g.input(GraphValue{"x", x.sizes().vec(), {"", "", "", ""}});
  const std::string y = emit_module(g, *block.module, c.name, "x");
  const auto values = runtime::run_reference(g.graph(), {{"x", from_torch(x)}});
  const PlainTensor& out = values.at(y);
  ASSERT_EQ(out.shape, expected.sizes().vec());
  EXPECT_LE(test::relative_difference(to_torch(out), expected), 1e-5) << c.name;
}

template <class Holder, class... Args>
std::function<Block()> make(Args... args) {
  return [=] {
    Holder holder(args...);
    return Block{holder.ptr(), [holder](const torch::Tensor& x) mutable { return holder->forward(x); }};
  };
}

INSTANTIATE_TEST_SUITE_P(
    Zoo, BlockGraph,
    ::testing::Values(BlockCase{"squeeze_excite", 32, make<SqueezeExcite>(32, 8)},
                      BlockCase{"residual_block_se", 8, make<ResidualBlockSE>(8, 16, false, 4)},
                      BlockCase{"residual_block_se_separable", 16, make<ResidualBlockSE>(16, 16, true, 4)},
                      BlockCase{"upsample", 8, make<Upsample>(8, 4, false)},
                      BlockCase{"upsample_separable", 8, make<Upsample>(8, 4, true)},
                      BlockCase{"aspp", 16, make<Aspp>(AsppOptions{16, 8, 12, {2, 4}, 4, 0.5, false})},
                      BlockCase{"aspp_separable", 16, make<Aspp>(AsppOptions{16, 8, 12, {2, 4}, 4, 0.5, true})},
                      BlockCase{"bottleneck_block", 16, make<BottleneckBlock>(16, 4)},
                      BlockCase{"linear_attention", 16, make<LinearAttention>(16, 4, 0)},
                      BlockCase{"inverted_residual", 16, make<InvertedResidual>(16, 16, 1, 6)},
                      BlockCase{"inverted_residual_stride2", 16, make<InvertedResidual>(16, 24, 2, 6)},
                      BlockCase{"basic_block", 16, make<BasicBlock>(16, 16, 1)},
                      BlockCase{"basic_block_downsample", 16, make<BasicBlock>(16, 32, 2)}),
    [](const ::testing::TestParamInfo<BlockCase>& info) { return info.param.name; });

TEST(BlockGraph, DecoderStageReadsItsSkip) {
  auto stage = DecoderStage(16, 8, 8, /*separable_up=*/false, /*skip_se=*/true,
                            torch::nn::AnyModule(ResidualBlockSE(16, 8, false, 4)));
  test::randomize_weights(*stage, 12);
  stage->eval();
  torch::manual_seed(6);
  const torch::Tensor x = torch::randn({1, 16, 8, 8}), skip = torch::randn({1, 8, 16, 16});
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = stage->forward(x, skip);
  }
  GraphBuilder g("decoder_stage");
  g.input(GraphValue{"x", x.sizes().vec(), {"", "", "", ""}});
  g.input(GraphValue{"skip", skip.sizes().vec(), {"", "", "", ""}});
  const std::string y = stage->emit_graph(g, "dec", "x", "skip");
  const auto values = runtime::run_reference(g.graph(), {{"x", from_torch(x)}, {"skip", from_torch(skip)}});
  EXPECT_LE(test::relative_difference(to_torch(values.at(y)), expected), 1e-5);
}

// LibTorch's own layers cannot implement EmitsGraph; anything else without an emitter is
// refused naming its path.
TEST(BlockGraph, ModuleWithoutEmitterIsRefusedNamingItsPath) {
  GraphBuilder g("g");
  g.input(GraphValue{"x", {1, 4, 8, 8}, {"", "", "", ""}});
  torch::nn::Sigmoid unknown;
  EXPECT_ERROR_CONTAINS(emit_module(g, *unknown, "head.gate", "x"), "module 'head.gate'");
  EXPECT_ERROR_CONTAINS(emit_module(g, *unknown, "head.gate", "x"), "has no graph emitter");
  torch::nn::BatchNorm2d lone(4);
  EXPECT_ERROR_CONTAINS(emit_module(g, *lone, "head.bn", "x"), "BatchNorm 'head.bn' does not follow a convolution");
}

}  // namespace
}  // namespace leanseg
