// Random draws built directly on the raw 64-bit output of std::mt19937_64, whose sequence the
// C++ standard fixes. The standard distributions are implementation-defined, so using these
// keeps synthetic data, splits and augmentations identical across standard libraries.
#pragma once
#include <cmath>
#include <cstdint>
#include <random>

namespace leanseg::data_detail {

// Uniform in [0, 1) with 53 random bits.
inline double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

inline double uniform(std::mt19937_64& rng, double lo, double hi) { return lo + (hi - lo) * uniform01(rng); }

// Uniform integer in [0, n) for n > 0 (modulo bias is below 2^-40 for the n used here).
inline uint64_t uniform_index(std::mt19937_64& rng, uint64_t n) { return rng() % n; }

// Standard normal by Box–Muller (one value per call; simplicity over speed).
inline double normal01(std::mt19937_64& rng) {
  const double u1 = 1.0 - uniform01(rng);  // (0, 1], so log() stays finite
  const double u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

// Derives an independent stream seed for item `index` of a run seeded with `seed`
// (splitmix64 finaliser), so item i does not depend on how many items are generated.
inline uint64_t mix_seed(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace leanseg::data_detail
