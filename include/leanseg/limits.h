// Limits on sizes that come from files and command lines (model metadata, `.lsr` graphs,
// safetensors headers, --input-size), and the overflow-safe arithmetic that enforces them.
// A hostile or damaged file must end in an Error naming it, never in a division by zero, a
// wrapped integer or an allocation of terabytes. Torch-free (standard library + nlohmann-json).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "leanseg/error.h"

namespace leanseg {

// Far above any image or layer leanseg is used for, far below what overflows or exhausts memory.
constexpr int64_t kMaxImageSide = 16384;    // height or width of a model input
constexpr int64_t kMaxChannels = 65536;     // channels of a layer, widths of a model config
constexpr uint64_t kMaxArenaBytes = 16ull << 30;  // activation memory the engine may plan
// Classes of a segmentation model (background included): label maps are 8-bit, and a label
// image with more distinct values is far more likely an instance labelling than classes.
constexpr int kMaxClasses = 64;

// Product of `shape`, or nullopt when a dimension is negative or the product does not fit in
// int64 (a shape like [2^62, 4] would otherwise wrap to a small or zero size).
inline std::optional<int64_t> checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d == 0) n = 0;
  }
  if (n == 0) return 0;  // [0, 2^62, 2^62] holds nothing, however the other axes multiply
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n)) return std::nullopt;
  return n;
}

// `v` as int64 when it is a JSON integer that fits: nlohmann's get<int64_t>() silently wraps
// unsigned values above 2^63 - 1 to negative ones.
inline std::optional<int64_t> json_int64(const nlohmann::json& v) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return std::nullopt;
}

// Throws "<what>: input size HxW (HxW) ..." unless both sides are in [1, kMaxImageSide].
inline void check_image_size(int64_t height, int64_t width, const std::string& what) {
  const std::string size = std::to_string(height) + "x" + std::to_string(width) + " (HxW)";
  require(height >= 1 && width >= 1, what + ": input size " + size + " is not positive");
  require(height <= kMaxImageSide && width <= kMaxImageSide,
          what + ": input size " + size + " exceeds the limit of " + std::to_string(kMaxImageSide) +
              " pixels per side");
}

// Throws "<what> holds N non-finite values (the first, NaN, at element i of n); ..." when any of
// the n floats is NaN or infinite: weights like that (a damaged file, a diverged training run)
// would silently give an empty or a full mask.
inline void check_finite(const float* values, size_t n, const std::string& what) {
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(values[i]) && bad++ == 0) first = i;
  if (bad == 0) return;
  const float v = values[first];
  const std::string shown = std::isnan(v) ? "NaN" : (v > 0 ? "+inf" : "-inf");
  throw Error(what + " holds " + std::to_string(bad) + " non-finite value" + (bad == 1 ? "" : "s") + " (the first, " +
              shown + ", at element " + std::to_string(first) + " of " + std::to_string(n) +
              "): the file is damaged or the training run that wrote it diverged");
}

}  // namespace leanseg
