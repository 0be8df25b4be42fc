// Force-included into src/runtime/engine.cpp in the fuzz build only (fuzz/CMakeLists.txt):
// clang 14 rejects __builtin_cpu_supports("avxvnni") (GCC 12 knows it), so the name is answered
// here from CPUID (leaf 7, sub-leaf 1, EAX bit 4) and every other name by the builtin itself.
#pragma once
#include <cpuid.h>
#include <cstring>

static inline bool leanseg_fuzz_cpu_supports(const char* feature) {
  if (std::strcmp(feature, "avxvnni") == 0) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4)) != 0;
  }
#define LEANSEG_FEATURE(name) \
  if (std::strcmp(feature, name) == 0) return __builtin_cpu_supports(name);
  LEANSEG_FEATURE("avx512f")
  LEANSEG_FEATURE("avx512bw")
  LEANSEG_FEATURE("avx512vl")
  LEANSEG_FEATURE("avx512dq")
  LEANSEG_FEATURE("avx512vnni")
  LEANSEG_FEATURE("avx2")
  LEANSEG_FEATURE("fma")
#undef LEANSEG_FEATURE
  return false;
}
#define __builtin_cpu_supports(feature) leanseg_fuzz_cpu_supports(feature)
