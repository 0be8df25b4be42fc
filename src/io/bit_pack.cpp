// Torch-free on purpose (see bit_pack.h): standard library only.
#include "io/bit_pack.h"

#include <string>

#include "leanseg/error.h"

namespace leanseg {
namespace {

void check_pack_bits(int bits) {
  require(bits == 1 || bits == 2 || bits == 4 || bits == 8,
          "bit packing: unsupported code width " + std::to_string(bits) + " bits (1, 2, 4 or 8)");
}

}  // namespace

size_t packed_size(size_t count, int bits) {
  check_pack_bits(bits);
  return (count * static_cast<size_t>(bits) + 7) / 8;
}

std::vector<uint8_t> pack_codes(const uint8_t* codes, size_t count, int bits) {
  std::vector<uint8_t> out(packed_size(count, bits), 0);
  if (bits == 8) {
    out.assign(codes, codes + count);
    return out;
  }
  const unsigned limit = 1u << bits;
  const size_t per_byte = 8 / static_cast<size_t>(bits);
  for (size_t i = 0; i < count; ++i) {
    require(codes[i] < limit, "bit packing: code " + std::to_string(codes[i]) + " at index " + std::to_string(i) +
                                  " does not fit in " + std::to_string(bits) + " bits");
    out[i / per_byte] |= static_cast<uint8_t>(codes[i] << ((i % per_byte) * bits));
  }
  return out;
}

std::vector<uint8_t> unpack_codes(const uint8_t* packed, size_t packed_bytes, size_t count, int bits) {
  const size_t expected = packed_size(count, bits);
  require(packed_bytes == expected, "bit packing: " + std::to_string(count) + " codes of " + std::to_string(bits) +
                                        " bits need " + std::to_string(expected) + " bytes, got " +
                                        std::to_string(packed_bytes));
  if (bits == 8) return std::vector<uint8_t>(packed, packed + count);
  std::vector<uint8_t> out(count);
  const size_t per_byte = 8 / static_cast<size_t>(bits);
  const unsigned mask = (1u << bits) - 1;
  for (size_t i = 0; i < count; ++i) out[i] = static_cast<uint8_t>((packed[i / per_byte] >> ((i % per_byte) * bits)) & mask);
  // Non-zero padding means the bytes were not written by pack_codes for this count.
  const size_t used_bits = (count * bits) % 8;
  if (used_bits != 0)
    require((packed[expected - 1] >> used_bits) == 0, "bit packing: non-zero padding bits after the last of " +
                                                          std::to_string(count) + " codes (corrupt or mismatched data)");
  return out;
}

}  // namespace leanseg
