// Loads a .lsr model with the installed runtime and segments a synthetic bright disc.
//   example_runtime_cpp MODEL.lsr [fp32|bf16|int8]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "leanseg/error.h"
#include "leanseg/runtime.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.lsr [fp32|bf16|int8]\n", argv[0]);
    return 2;
  }
  try {
    leanseg::runtime::EngineOptions options;
    options.precision = leanseg::runtime::precision_from_name(argc > 2 ? argv[2] : "fp32");
    options.threads = 2;
    auto engine = leanseg::runtime::Engine::load(argv[1], options);
    const int c = engine.input_channels(), h = engine.input_height(), w = engine.input_width();
    std::vector<float> x(static_cast<size_t>(c) * h * w);
    for (int y = 0; y < h; ++y)
      for (int i = 0; i < w; ++i) x[static_cast<size_t>(y) * w + i] = std::hypot(y - h / 2.0, i - w / 2.0) < h / 4.0 ? 1.f : -1.f;
    const std::vector<float>& logits = engine.run(x.data());
    size_t foreground = 0;
    for (float v : logits) foreground += v > 0;
    std::printf("example_runtime_cpp: %dx%d logits, %zu foreground pixels, all finite: %s\n", h, w, foreground,
                std::all_of(logits.begin(), logits.end(), [](float v) { return std::isfinite(v); }) ? "yes" : "no");
    return 0;
  } catch (const leanseg::Error& e) {
    std::fprintf(stderr, "example_runtime_cpp: %s\n", e.what());
    return 1;
  }
}
