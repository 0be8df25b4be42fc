// Internals of weight quantization shared by the `leanseg compress` command, model-file storage
// and the tests; the API is in include/leanseg/compress.h.
#pragma once
#include <string>

#include "leanseg/compress.h"

namespace leanseg {

// `--quant fp16|bf16|int8|int4|int2` (+ --per-channel) → how save_model stores the weights.
// Throws Error naming --quant for unknown values and for an unknown bit-width ("int3").
WeightStorage storage_for_quant(const std::string& quant, bool per_channel);

// `--quant seed8|seed4|seed2`: the framework seed's uniform formula (seed_uniform_quantize) at
// that many bits; 0 for every other --quant value. Throws Error naming --quant for "seed3".
int seed_quant_bits(const std::string& quant);

// 8, 4 or 2 for "affine8/4/2", 0 for the other storage kinds.
int storage_bits(const std::string& kind);

}  // namespace leanseg
