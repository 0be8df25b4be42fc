// Quantization formulas (C4): error bounds per bit-width, the seed's formula as written, the
// straight-through estimator and bad bit-widths.
#include <cmath>

#include "compress/quantize.h"
#include "leanseg/compress.h"
#include "leanseg/error.h"
#include "test_util.h"

namespace leanseg {
namespace {

// Weights whose channels differ in scale by 100x, as conv layers' often do.
torch::Tensor channel_scaled_weights() {
  torch::manual_seed(5);
  auto w = torch::randn({16, 8, 3, 3});
  return w * torch::logspace(-3, -1, 16).reshape({16, 1, 1, 1});
}

TEST(Quant, AffineErrorIsAtMostHalfAStepPerBitWidth) {
  const auto x = channel_scaled_weights();
  for (int bits : {8, 4, 2}) {
    for (bool per_channel : {false, true}) {
      SCOPED_TRACE(std::to_string(bits) + " bits, " + (per_channel ? "per channel" : "per tensor"));
      const AffineQuantized q = affine_quantize(x, bits, per_channel);
      ASSERT_EQ(q.scale.numel(), per_channel ? 16 : 1);
      EXPECT_LE(q.codes.max().item<int>(), (1 << bits) - 1);
      // s = (max − min)/(2^b − 1) and z = round(−min/s) over the range widened to include 0.
      const auto rows = x.reshape({per_channel ? 16 : 1, -1});
      const auto lo = rows.amin(1).clamp_max(0), hi = rows.amax(1).clamp_min(0);
      const auto s = (hi - lo) / ((1 << bits) - 1);
      EXPECT_TRUE(torch::allclose(q.scale, s, 1e-6, 0));
      EXPECT_TRUE(torch::equal(q.zero_point.to(torch::kFloat32), torch::round(-lo / s)));
      const auto err = (affine_dequantize(q) - x).abs();
      const auto half_step = (per_channel ? q.scale.reshape({16, 1, 1, 1}) : q.scale) / 2;
      EXPECT_TRUE((err <= half_step * (1 + 1e-4)).all().item<bool>())
          << "max error / (s/2) = " << (err / half_step).max().item<double>();
    }
  }
}

TEST(Quant, PerChannelKeepsSmallChannelsPrecise) {
  const auto x = channel_scaled_weights();  // channel 0 is 100x smaller than channel 15
  for (int bits : {8, 4, 2}) {
    const double per_tensor = (affine_dequantize(affine_quantize(x, bits, false))[0] - x[0]).abs().max().item<double>();
    const double per_channel = (affine_dequantize(affine_quantize(x, bits, true))[0] - x[0]).abs().max().item<double>();
    EXPECT_LT(per_channel, per_tensor / 3) << bits << " bits";
  }
}

TEST(Quant, ZeroIsExactAndAllZeroChannelsStayZero) {
  auto x = channel_scaled_weights();
  x[3].zero_();
  x.index_put_({0, 0, 0, 0}, 0.0);
  for (int bits : {8, 4, 2}) {
    const auto back = affine_dequantize(affine_quantize(x, bits, true));
    EXPECT_TRUE(torch::equal(back[3], torch::zeros_like(x[3])));
    EXPECT_EQ(back[0][0][0][0].item<float>(), 0.0f);
  }
}

TEST(Quant, SeedFormulaIsImplementedAsWrittenWithItsBound) {
  // X_q = round(X × (2^b − 1)) / (2^b − 1)
  EXPECT_FLOAT_EQ(seed_uniform_quantize(torch::tensor({0.4f}), 2).item<float>(), 1.0f / 3);
  EXPECT_FLOAT_EQ(seed_uniform_quantize(torch::tensor({0.9f}), 2).item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(seed_uniform_quantize(torch::tensor({-0.35f}), 4).item<float>(), -5.0f / 15);
  EXPECT_FLOAT_EQ(seed_uniform_quantize(torch::tensor({0.2f}), 8).item<float>(), 51.0f / 255);
  // No scale: weights far below the grid step collapse to 0 (why affine quantization exists).
  EXPECT_EQ(seed_uniform_quantize(torch::tensor({0.05f}), 2).item<float>(), 0.0f);
  torch::manual_seed(6);
  const auto x = torch::rand({10000}) * 2 - 1;
  for (int bits : {8, 4, 2}) {
    const double bound = seed_uniform_error_bound(bits);
    EXPECT_DOUBLE_EQ(bound, 0.5 / ((1 << bits) - 1));
    const double err = (seed_uniform_quantize(x, bits) - x).abs().max().item<double>();
    EXPECT_LE(err, bound * (1 + 1e-4)) << bits << " bits";  // + float rounding of X × (2^b − 1)
    EXPECT_GT(err, bound * 0.9) << bits << " bits: the bound should be nearly reached on dense data";
  }
}

TEST(Quant, StraightThroughGradientIsIdentity) {
  const auto upstream = torch::randn({16, 8, 3, 3});
  for (int bits : {8, 4, 2}) {
    for (int variant = 0; variant < 3; ++variant) {
      auto x = channel_scaled_weights().requires_grad_(true);
      const auto y = variant == 0 ? fake_quant_affine(x, bits, false)
                   : variant == 1 ? fake_quant_affine(x, bits, true)
                                  : fake_quant_seed(x, bits);
      (y * upstream).sum().backward();
      EXPECT_TRUE(torch::equal(x.grad(), upstream)) << bits << " bits, variant " << variant;
      const auto expected = variant == 2 ? seed_uniform_quantize(x.detach(), bits)
                                         : affine_dequantize(affine_quantize(x, bits, variant == 1));
      EXPECT_TRUE(torch::allclose(y.detach(), expected, 0, 1e-7));  // forward: the quantized value
    }
  }
}

TEST(Quant, UnknownBitWidthsAndQuantValuesAreRejected) {
  EXPECT_ERROR_CONTAINS(check_bits(3), "unknown bit-width 3 (8, 4, 2)");
  EXPECT_ERROR_CONTAINS(affine_quantize(torch::ones({4}), 16, false), "unknown bit-width 16 (8, 4, 2)");
  EXPECT_ERROR_CONTAINS(seed_uniform_quantize(torch::ones({4}), 1), "unknown bit-width 1 (8, 4, 2)");
  EXPECT_ERROR_CONTAINS(storage_for_quant("int3", false), "--quant int3: unknown bit-width 3 (8, 4, 2)");
  EXPECT_ERROR_CONTAINS(storage_for_quant("fp8", false), "--quant 'fp8': unknown value (fp16, bf16, int8, int4, int2, seed8, seed4, seed2)");
  EXPECT_ERROR_CONTAINS(storage_for_quant("fp16", true), "--per-channel applies to --quant int8, int4 or int2");
  EXPECT_EQ(storage_for_quant("int4", true).kind, "affine4");
  EXPECT_TRUE(storage_for_quant("int4", true).per_channel);
  EXPECT_EQ(storage_for_quant("bf16", false).kind, "bf16");
}

}  // namespace
}  // namespace leanseg
