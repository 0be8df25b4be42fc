// Independent parameter-count formulas, written from the layer definitions (not from the
// model code), so the zoo's counts are checked against arithmetic.
#pragma once
#include <algorithm>
#include <cstdint>

namespace leanseg::test {

inline int64_t conv(int64_t in, int64_t out, int64_t k, int64_t groups = 1, bool bias = false) {
  return out * (in / groups) * k * k + (bias ? out : 0);
}
inline int64_t bn(int64_t c) { return 2 * c; }
inline int64_t conv_bn(int64_t in, int64_t out, int64_t k, int64_t groups = 1) { return conv(in, out, k, groups) + bn(out); }
inline int64_t linear(int64_t in, int64_t out) { return in * out + out; }
inline int64_t se(int64_t c) {
  const int64_t h = std::max<int64_t>(1, c / 16);
  return linear(c, h) + linear(h, c);
}

// torchvision MobileNetV2 features with a `in`-channel stem.
inline int64_t mobilenet_v2_features(int64_t in) {
  struct S { int64_t t, c, n, s; };
  const S settings[] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int64_t p = conv_bn(in, 32, 3), c_in = 32;
  for (const auto& s : settings)
    for (int64_t i = 0; i < s.n; ++i) {
      const int64_t hidden = c_in * s.t;
      if (s.t != 1) p += conv_bn(c_in, hidden, 1);
      p += conv_bn(hidden, hidden, 3, hidden) + conv_bn(hidden, s.c, 1);
      c_in = s.c;
    }
  return p + conv_bn(320, 1280, 1);
}

// M1 trainable part: enc0 + ASPP + decoder + head.
inline int64_t m1_trainable(int64_t in) {
  int64_t p = conv_bn(in, 32, 3);
  p += conv_bn(1280, 128, 1) + 3 * conv_bn(1280, 128, 3) + conv(1280, 128, 1) + 2 * 128 /*GroupNorm*/ + conv_bn(640, 512, 1);
  const int64_t ins[5] = {512, 256, 128, 64, 32}, skips[5] = {96, 32, 24, 16, 32}, outs[5] = {256, 128, 64, 32, 32};
  for (int i = 0; i < 5; ++i) {
    const int64_t cat = outs[i] + skips[i];
    p += ins[i] * outs[i] * 4 + outs[i];                     // ConvTranspose2d k2 with bias
    p += se(skips[i]);                                       // SE on the skip
    p += conv_bn(cat, outs[i], 3) + conv_bn(outs[i], outs[i], 3) + se(outs[i]) + conv(cat, outs[i], 1, 1, true);
  }
  return p + conv(32, 1, 1, 1, true);
}

inline int64_t unet(int64_t in, int64_t w) {
  auto dc = [](int64_t a, int64_t b) { return conv_bn(a, b, 3) + conv_bn(b, b, 3); };
  int64_t p = dc(in, w) + dc(w, 2 * w) + dc(2 * w, 4 * w) + dc(4 * w, 8 * w) + dc(8 * w, 16 * w);
  for (int64_t c = 8 * w; c >= w; c /= 2) p += (2 * c) * c * 4 + c + dc(2 * c, c);
  return p + conv(w, 1, 1, 1, true);
}

// FLOPs of the U-Net at H×W with the convention of ops.h.
inline double unet_flops(int64_t in, int64_t w, int64_t h, int64_t wd) {
  double f = 0;
  auto conv3 = [&](int64_t a, int64_t b, int64_t hh, int64_t ww) { f += 2.0 * hh * ww * a * b * 9; };
  int64_t c_in = in;
  for (int l = 0; l < 5; ++l) {
    const int64_t c = w << l, hh = h >> l, ww = wd >> l;
    conv3(c_in, c, hh, ww);
    conv3(c, c, hh, ww);
    c_in = c;
  }
  for (int l = 3; l >= 0; --l) {
    const int64_t c = w << l, hh = h >> l, ww = wd >> l;
    f += 2.0 * (hh / 2) * (ww / 2) * (2 * c) * c * 4;  // transposed conv from level l+1
    conv3(2 * c, c, hh, ww);
    conv3(c, c, hh, ww);
  }
  return f + 2.0 * h * wd * w;
}

}  // namespace leanseg::test
