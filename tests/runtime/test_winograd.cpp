// The engine's Winograd F(4x4, 3x3) kernel (src/runtime/winograd.h) against a naive 3x3
// convolution: ragged borders, every column-block width, concatenated and depth-to-space inputs,
// accumulation and the fused activations.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "runtime/winograd.h"

namespace leanseg::runtime {
namespace {

struct Input {
  std::vector<float> data;
  int64_t channels;
  bool depth_to_space;
};

std::vector<float> uniform(size_t n, uint32_t seed, float lo = -1, float hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// Channel c of pixel (y, x) of an input, as the kernel is told to read it.
float at(const Input& in, int64_t H, int64_t W, int64_t y, int64_t x, int64_t c) {
  const int64_t C = in.channels;
  if (!in.depth_to_space) return in.data[(y * W + x) * C + c];
  return in.data[((y / 2) * (W / 2) + x / 2) * 4 * C + ((y % 2) * 2 + x % 2) * C + c];
}

// Naive NHWC conv3x3 (padding 1) over the concatenated inputs, ONNX weights [Cout][Cin][3][3].
std::vector<float> naive(const WinogradShape& s, const std::vector<Input>& inputs, const std::vector<float>& w,
                         const float* bias, std::vector<float> dst) {
  const int64_t H = s.height, W = s.width, Cin = s.in_channels, Cout = s.out_channels;
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x)
      for (int64_t co = 0; co < Cout; ++co) {
        double acc = bias ? bias[co] : 0;
        int64_t ci0 = 0;
        for (const Input& in : inputs) {
          for (int64_t c = 0; c < in.channels; ++c)
            for (int ky = 0; ky < 3; ++ky)
              for (int kx = 0; kx < 3; ++kx) {
                const int64_t yy = y + ky - 1, xx = x + kx - 1;
                if (yy < 0 || xx < 0 || yy >= H || xx >= W) continue;
                acc += double(w[((co * Cin + ci0 + c) * 3 + ky) * 3 + kx]) * at(in, H, W, yy, xx, c);
              }
          ci0 += in.channels;
        }
        float& out = dst[(y * W + x) * Cout + co];
        float v = static_cast<float>(acc) + (s.accumulate ? out : 0.f);
        if (s.activation == WinogradActivation::Relu) v = std::max(v, 0.f);
        if (s.activation == WinogradActivation::Clip) v = std::min(std::max(v, s.clip_min), s.clip_max);
        out = v;
      }
  return dst;
}

std::vector<float> winograd(const WinogradShape& s, const std::vector<Input>& inputs, const std::vector<float>& w,
                            const float* bias, std::vector<float> dst) {
  std::vector<WinogradSource> sources;
  for (const Input& in : inputs) sources.push_back({in.data.data(), in.channels, in.depth_to_space});
  std::vector<float> scratch(winograd_scratch_bytes(s) / sizeof(float));
  const std::vector<float> weights = winograd_weight_layout(w.data(), s.out_channels, s.in_channels);
  winograd_conv3x3(s, sources.data(), static_cast<int>(sources.size()), weights.data(), bias, dst.data(), scratch.data());
  return dst;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::abs(a[i] - b[i])));
  return worst;
}

WinogradShape shape(int64_t h, int64_t w, int64_t cin, int64_t cout, int threads) {
  WinogradShape s;
  s.height = h, s.width = w, s.in_channels = cin, s.out_channels = cout, s.threads = threads;
  return s;
}

// 13 x 9: the last row and column of tiles hang over the border. 48 output channels run the
// 16-wide column blocks, 32 the 32-wide, 64 the 64-wide; every result within float rounding of
// the naive sum (outputs are O(1): |x| <= 1, |w| <= 0.2, 9 x 32 terms).
TEST(Winograd, MatchesANaiveConvolutionOnRaggedMapsForEveryColumnBlock) {
  for (int64_t cout : {48, 32, 64}) {
    WinogradShape s = shape(13, 9, 32, cout, 2);
    s.activation = WinogradActivation::Relu;
    const std::vector<Input> in{{uniform(13 * 9 * 32, 1), 32, false}};
    const auto w = uniform(size_t(cout) * 32 * 9, 2, -0.2f, 0.2f), bias = uniform(size_t(cout), 3);
    const std::vector<float> dst(size_t(13 * 9 * cout));
    const auto expected = naive(s, in, w, bias.data(), dst);
    EXPECT_LT(max_abs_diff(winograd(s, in, w, bias.data(), dst), expected), 5e-5) << cout << " output channels";
    EXPECT_GT(*std::max_element(expected.begin(), expected.end()), 0.5f);  // not all clipped away
  }
}

// A U-Net decoder's conv: skip ⊕ upsampled, the upsampled half read through DepthToSpace from
// its half-resolution map, plus a third input; accumulating into dst (a residual) with ReLU6.
TEST(Winograd, ReadsConcatenatedAndDepthToSpaceInputsAndAccumulates) {
  const int64_t H = 20, W = 24;
  WinogradShape s = shape(H, W, 16 + 16 + 32, 64, 3);
  s.activation = WinogradActivation::Clip, s.clip_min = 0, s.clip_max = 0.5f;
  s.accumulate = true;
  const std::vector<Input> in{{uniform(H * W * 16, 4), 16, false},
                              {uniform((H / 2) * (W / 2) * 64, 5), 16, true},
                              {uniform(H * W * 32, 6), 32, false}};
  const auto w = uniform(64 * 64 * 9, 7, -0.1f, 0.1f);
  const std::vector<float> dst = uniform(H * W * 64, 8, -0.5f, 0.5f);
  const auto expected = naive(s, in, w, nullptr, dst);
  EXPECT_LT(max_abs_diff(winograd(s, in, w, nullptr, dst), expected), 5e-5);
  const auto [lo, hi] = std::minmax_element(expected.begin(), expected.end());
  EXPECT_EQ(*lo, 0.f);
  EXPECT_EQ(*hi, 0.5f);
  // Reading the upsampled half as a plain map instead would give other values.
  std::vector<Input> plain = in;
  plain[1].depth_to_space = false;
  plain[1].data.resize(H * W * 16);
  EXPECT_GT(max_abs_diff(winograd(s, plain, w, nullptr, dst), expected), 1e-2);
}

// Blocks of tiles are independent: any thread count gives the same bits; a map with many blocks.
TEST(Winograd, ResultsDoNotDependOnTheThreadCount) {
  const std::vector<Input> in{{uniform(64 * 40 * 16, 9), 16, false}};
  const auto w = uniform(32 * 16 * 9, 10, -0.3f, 0.3f), bias = uniform(32, 11);
  const std::vector<float> dst(64 * 40 * 32);
  const WinogradShape one = shape(64, 40, 16, 32, 1), three = shape(64, 40, 16, 32, 3);
  ASSERT_GT(160 / winograd_tile_block(one), 2);  // 160 tiles: several blocks per thread
  const auto a = winograd(one, in, w, bias.data(), dst);
  EXPECT_EQ(a, winograd(three, in, w, bias.data(), dst));
  EXPECT_LT(max_abs_diff(a, naive(one, in, w, bias.data(), dst)), 5e-5);
}

TEST(Winograd, ShapesAndScratch) {
  EXPECT_TRUE(winograd_supports(16, 32));
  EXPECT_FALSE(winograd_supports(8, 32));
  EXPECT_FALSE(winograd_supports(16, 40));
  const WinogradShape s = shape(64, 64, 64, 128, 2);
  const int64_t T = winograd_tile_block(s);
  EXPECT_EQ(T % 6, 0);  // whole row blocks of the product's 6-row kernel
  // Transformed weights, then per thread the transformed inputs and products of T tiles.
  EXPECT_EQ(winograd_scratch_bytes(s), (36u * 64 * 128 + 2u * 36 * T * (64 + 128)) * sizeof(float));
  // ONNX [Cout][Cin][3][3] → [Cin][3][3][Cout].
  std::vector<float> w(2 * 3 * 9);
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(i);
  const auto hwio = winograd_weight_layout(w.data(), 2, 3);
  EXPECT_EQ(hwio[(1 * 9 + 4) * 2 + 1], w[(1 * 3 + 1) * 9 + 4]);
  EXPECT_EQ(hwio[(2 * 9 + 8) * 2 + 0], w[(0 * 3 + 2) * 9 + 8]);
}

}  // namespace
}  // namespace leanseg::runtime
