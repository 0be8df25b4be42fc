#include "calibrate.h"

#include <algorithm>
#include <cmath>

#include "leanseg/error.h"

namespace leanseg::runtime {

std::map<std::string, float> calibrate_activations(const Graph& graph, const std::vector<PlainTensor>& inputs,
                                                   double percentile) {
  require(!inputs.empty(), "calibration needs at least one input image");
  require(percentile > 0 && percentile <= 100,
          "calibration percentile must be in (0, 100], got " + std::to_string(percentile));
  constexpr size_t kSamplesPerImage = 20000;  // per value: enough for a 99.99th percentile
  std::map<std::string, std::vector<float>> samples;
  std::map<std::string, float> absmax;
  for (const auto& input : inputs) {
    const auto values = run_reference(graph, {{graph.inputs.at(0).name, input}});
    for (const auto& [name, t] : values) {
      if (t.is_int || t.shape.size() != 4) continue;
      float& m = absmax[name];
      for (float v : t.f32) m = std::max(m, std::abs(v));
      if (percentile < 100) {
        const size_t stride = std::max<size_t>(1, t.f32.size() / kSamplesPerImage);
        auto& s = samples[name];
        for (size_t i = 0; i < t.f32.size(); i += stride) s.push_back(std::abs(t.f32[i]));
      }
    }
  }
  if (percentile < 100)
    for (auto& [name, s] : samples) {
      const size_t k = std::min(s.size() - 1, static_cast<size_t>(std::ceil(percentile / 100 * s.size())) - 1);
      std::nth_element(s.begin(), s.begin() + static_cast<long>(k), s.end());
      absmax[name] = std::max(s[k], 1e-6f);
    }
  return absmax;
}

}  // namespace leanseg::runtime
