// Packing of small unsigned codes (1, 2, 4 or 8 bits each) into bytes, for the compact weight
// storage of model files (sparse masks, 4-bit and 2-bit quantized weights). Torch-free, so the
// LibTorch-free runtime could read packed weights too.
//
// Layout: element i sits in byte i / (8 / bits), at bit offset (i % (8 / bits)) · bits, lowest
// bits first; the unused high bits of the last byte are zero. 8-bit codes are stored as is.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace leanseg {

// Bytes needed for `count` codes of `bits` bits: ceil(count · bits / 8).
size_t packed_size(size_t count, int bits);

// Throws Error for bits other than 1, 2, 4, 8 and for a code that does not fit in `bits` bits.
std::vector<uint8_t> pack_codes(const uint8_t* codes, size_t count, int bits);

// The inverse of pack_codes. Throws Error when `packed_bytes` is not packed_size(count, bits) or
// the padding bits of the last byte are not zero (a corrupt or mismatched tensor).
std::vector<uint8_t> unpack_codes(const uint8_t* packed, size_t packed_bytes, size_t count, int bits);

}  // namespace leanseg
