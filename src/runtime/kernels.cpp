#include "kernels.h"

namespace leanseg::runtime {

void depthwise_upsample2x(const float* x, float* y, const float* w, const float* b, int64_t height, int64_t width,
                          int64_t channels) {
  const int64_t C = channels, out_row = 2 * width * C;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < height; ++i)
    for (int64_t dy = 0; dy < 2; ++dy)
      for (int64_t j = 0; j < width; ++j) {
        const float* in = x + (i * width + j) * C;
        for (int64_t dx = 0; dx < 2; ++dx) {
          float* out = y + (2 * i + dy) * out_row + (2 * j + dx) * C;
          const float* tap = w + (dy * 2 + dx) * C;
          if (b) {
            for (int64_t c = 0; c < C; ++c) out[c] = in[c] * tap[c] + b[c];
          } else {
            for (int64_t c = 0; c < C; ++c) out[c] = in[c] * tap[c];
          }
        }
      }
}

}  // namespace leanseg::runtime
