// Magnitude pruning (C1): exact sparsity, global vs per-layer thresholds, ties, frozen weights,
// bad sparsities.
#include <cmath>

#include "compress/prune.h"
#include "leanseg/compress.h"
#include "leanseg/error.h"
#include "compress_test_util.h"

namespace leanseg {
namespace {

SegmentationModel tiny_model() { return test::tiny_efficient_unet(7); }

int64_t zeros(const torch::Tensor& t) { return t.numel() - t.count_nonzero().item<int64_t>(); }

TEST(Prune, CompressibleWeightsAreConvAndLinearWeightsOnly) {
  auto m = create_model("mobilenet-aspp-se-unet");
  int64_t modules = 0;
  for (const auto& mod : m->modules())
    modules += mod->as<torch::nn::Conv2dImpl>() || mod->as<torch::nn::ConvTranspose2dImpl>() || mod->as<torch::nn::LinearImpl>();
  const auto ws = compressible_weights(*m);
  EXPECT_EQ(static_cast<int64_t>(ws.size()), modules);
  for (const auto& [name, w] : ws) {
    EXPECT_GE(w.dim(), 2) << name;
    EXPECT_EQ(name.substr(name.size() - 7), ".weight") << name;
  }
}

TEST(Prune, GlobalScopeHitsTheRequestedSparsityExactly) {
  for (double p : {0.0, 0.3, 0.5, 0.9, 0.999}) {
    SCOPED_TRACE(p);
    auto m = tiny_model();
    const PruneResult r = magnitude_prune(*m, {p, PruneScope::Global, {}, false});
    int64_t n = 0, z = 0;
    double max_pruned = 0, min_kept = INFINITY;
    const auto before = tiny_model();  // same seed: the unpruned weights
    const auto orig = compressible_weights(*before);
    const auto ws = compressible_weights(*m);
    for (size_t i = 0; i < ws.size(); ++i) {
      n += ws[i].second.numel(), z += zeros(ws[i].second);
      const auto mask = r.masks[i].mask;
      const auto a = orig[i].second.abs();
      if ((~mask).any().item<bool>()) max_pruned = std::max(max_pruned, a.masked_select(~mask).max().item<double>());
      if (mask.any().item<bool>()) min_kept = std::min(min_kept, a.masked_select(mask).min().item<double>());
      EXPECT_TRUE(torch::equal(ws[i].second, orig[i].second * mask)) << "W' = W ⊙ M for " << ws[i].first;
    }
    EXPECT_EQ(r.selected, n);
    EXPECT_EQ(z, std::llround(p * n));
    EXPECT_EQ(r.pruned, z);
    EXPECT_LE(max_pruned, r.threshold);  // one θ for the whole model
    EXPECT_GE(min_kept, r.threshold);
  }
}

TEST(Prune, LayerScopeHitsTheSparsityInEveryLayer) {
  auto m = tiny_model();
  const PruneResult r = magnitude_prune(*m, {0.7, PruneScope::Layer, {}, false});
  const auto ws = compressible_weights(*m);
  ASSERT_EQ(r.masks.size(), ws.size());
  int64_t total = 0;
  for (const auto& [name, w] : ws) {
    EXPECT_EQ(zeros(w), std::llround(0.7 * w.numel())) << name;
    total += std::llround(0.7 * w.numel());
  }
  EXPECT_EQ(r.pruned, total);
}

TEST(Prune, TiesAtTheThresholdArePrunedInPositionOrder) {
  torch::nn::Linear lin(5, 2);
  {
    torch::NoGradGuard ng;
    lin->weight.fill_(0.25);
    lin->weight.index_put_({1, 4}, 0.1);  // the single smallest
  }
  const PruneResult r = magnitude_prune(*lin, {0.5, PruneScope::Global, {}, false});
  ASSERT_EQ(r.masks.size(), 1u);
  EXPECT_EQ(r.pruned, 5);
  EXPECT_FLOAT_EQ(static_cast<float>(r.threshold), 0.25f);
  // The 0.1 and then the first four 0.25s in row-major order.
  const auto expected = torch::tensor({0, 0, 0, 0, 1, 1, 1, 1, 1, 0}, torch::kBool).reshape({2, 5});
  EXPECT_TRUE(torch::equal(r.masks[0].mask, expected)) << r.masks[0].mask;
  EXPECT_EQ(zeros(lin->weight), 5);
  EXPECT_EQ(zeros(lin->bias), 0);  // biases are never pruned
}

TEST(Prune, FrozenEncoderNeedsExplicitPermission) {
  auto m = create_model("mobilenet-aspp-se-unet-lite");  // encoder frozen by default
  test::randomize_weights(*m, 3);
  ASSERT_EQ(m->frozen_prefixes(), std::vector<std::string>{"encoder."});
  EXPECT_ERROR_CONTAINS(magnitude_masks(*m, {0.5, PruneScope::Global, {"encoder."}, false}),
                        "pruning would change the frozen encoder; pass --prune-frozen to allow it");
  // By default only the trainable weights are pruned; the frozen ones are listed as skipped.
  const PruneResult r = magnitude_prune(*m, {0.5, PruneScope::Global, {}, false});
  EXPECT_FALSE(r.skipped_frozen.empty());
  for (const auto& [name, w] : compressible_weights(*m)) {
    if (name.rfind("encoder.", 0) == 0) EXPECT_EQ(zeros(w), 0) << name;
  }
  const PruneResult all = magnitude_prune(*m, {0.5, PruneScope::Global, {"encoder."}, true});
  EXPECT_TRUE(all.skipped_frozen.empty());
  EXPECT_EQ(all.pruned, std::llround(0.5 * all.selected));
}

TEST(Prune, BadSparsityAndSelectionsGetClearErrors) {
  auto m = tiny_model();
  for (double p : {1.0, -0.1, 1.5, std::nan("")})
    EXPECT_ERROR_CONTAINS(magnitude_masks(*m, {p, PruneScope::Global, {}, false}), "sparsity must be in [0, 1)");
  EXPECT_ERROR_CONTAINS(parse_prune_spec("magnitude:1.5"), "--prune magnitude:1.5: sparsity must be in [0, 1), got 1.5");
  EXPECT_ERROR_CONTAINS(parse_prune_spec("magnitude:1"), "sparsity must be in [0, 1), got 1");
  EXPECT_ERROR_CONTAINS(parse_prune_spec("magnitude:half"), "'half' is not a number");
  EXPECT_ERROR_CONTAINS(parse_prune_spec("random:0.5"), "unknown method 'random' (magnitude, structured)");
  EXPECT_EQ(parse_prune_spec("structured:0.3").method, "structured");
  EXPECT_ERROR_CONTAINS(parse_prune_spec("0.5"), "expected METHOD:SPARSITY");
  EXPECT_DOUBLE_EQ(parse_prune_spec("magnitude:0.5").sparsity, 0.5);
  EXPECT_ERROR_CONTAINS(magnitude_masks(*m, {0.5, PruneScope::Global, {"nothing."}, false}),
                        "--prune-layers 'nothing.': matches no conv/linear weight");
  EXPECT_ERROR_CONTAINS(prune_scope_from_string("model"), "--prune-scope 'model': expected global or layer");
}

}  // namespace
}  // namespace leanseg
