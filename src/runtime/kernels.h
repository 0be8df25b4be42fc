// Hand-written CPU kernels for layers oneDNN runs poorly (measured in docs/runtime.md).
#pragma once
#include <cstdint>

namespace leanseg::runtime {

// Depthwise ConvTranspose2d(kernel 2, stride 2, no padding), NHWC float, batch 1:
// y[2i+dy, 2j+dx, c] = x[i, j, c] · w[dy·2+dx][c] + b[c]. `w` is [4][C] (tap-major, so the
// inner loop over channels is contiguous), `b` may be null. oneDNN 2.6 runs this layer through a
// generic kernel ~10x slower than its memory traffic allows (bf16: ~60x).
void depthwise_upsample2x(const float* x, float* y, const float* w, const float* b, int64_t height, int64_t width,
                          int64_t channels);

}  // namespace leanseg::runtime
