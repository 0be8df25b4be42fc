// Packed 1/2/4/8-bit codes (sparse masks and low-bit weights in model files).
#include <random>

#include "io/bit_pack.h"
#include "leanseg/error.h"
#include "test_util.h"

namespace leanseg {
namespace {

TEST(Pack, RoundTripsBitExactlyForEveryWidthAndOddLengths) {
  std::mt19937 rng(3);
  for (int bits : {1, 2, 4, 8}) {
    for (size_t n : {0, 1, 2, 3, 5, 7, 8, 9, 15, 17, 1001}) {
      SCOPED_TRACE(std::to_string(bits) + " bits, " + std::to_string(n) + " codes");
      std::vector<uint8_t> codes(n);
      for (auto& c : codes) c = static_cast<uint8_t>(rng() % (1u << bits));
      const auto packed = pack_codes(codes.data(), n, bits);
      EXPECT_EQ(packed.size(), (n * bits + 7) / 8);
      EXPECT_EQ(packed.size(), packed_size(n, bits));
      EXPECT_EQ(unpack_codes(packed.data(), packed.size(), n, bits), codes);
    }
  }
}

TEST(Pack, LayoutIsLowestBitsFirst) {
  const std::vector<uint8_t> two = {1, 2, 3, 0, 3};  // 0b00'11'10'01, then 0b11
  EXPECT_EQ(pack_codes(two.data(), two.size(), 2), (std::vector<uint8_t>{0x39, 0x03}));
  const std::vector<uint8_t> four = {0xA, 0x5, 0x3};
  EXPECT_EQ(pack_codes(four.data(), four.size(), 4), (std::vector<uint8_t>{0x5A, 0x03}));
  const std::vector<uint8_t> one = {1, 0, 0, 0, 0, 0, 0, 1, 1};
  EXPECT_EQ(pack_codes(one.data(), one.size(), 1), (std::vector<uint8_t>{0x81, 0x01}));
}

TEST(Pack, BadInputGetsClearErrors) {
  const std::vector<uint8_t> codes = {1, 4};
  EXPECT_ERROR_CONTAINS(pack_codes(codes.data(), codes.size(), 2), "code 4 at index 1 does not fit in 2 bits");
  EXPECT_ERROR_CONTAINS(pack_codes(codes.data(), codes.size(), 3), "unsupported code width 3 bits");
  const std::vector<uint8_t> packed = {0x39, 0x03};
  EXPECT_ERROR_CONTAINS(unpack_codes(packed.data(), packed.size(), 9, 2), "9 codes of 2 bits need 3 bytes, got 2");
  // 5 two-bit codes use the low 2 bits of the second byte; 0x13 has a stray bit above them.
  const std::vector<uint8_t> stray = {0x39, 0x13};
  EXPECT_ERROR_CONTAINS(unpack_codes(stray.data(), stray.size(), 5, 2), "non-zero padding bits");
}

}  // namespace
}  // namespace leanseg
