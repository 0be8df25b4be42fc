// libFuzzer: the safetensors reader (header validation, offsets, shapes, dtypes) on arbitrary
// bytes. A leanseg::Error is the expected outcome for malformed input; anything else (a crash,
// a sanitizer report, another exception) is a finding.
#include <cstdint>
#include <vector>

#include "leanseg/error.h"
#include "leanseg/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = leanseg::SafeTensorsFile::parse(std::vector<unsigned char>(data, data + size), "fuzz.safetensors");
    // Whatever the reader accepted must be readable within the bytes it holds.
    std::vector<unsigned char> buf;
    for (const auto& t : file.tensors()) {
      (void)t.numel();
      buf.resize(t.nbytes());
      if (!buf.empty()) file.read(t, buf.data());
      if (file.find(t.name) != &file.at(t.name)) __builtin_trap();
    }
    (void)file.metadata().size();
  } catch (const leanseg::Error&) {
  }
  return 0;
}
