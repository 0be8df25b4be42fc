// libFuzzer: the .lsr reader (metadata, graph JSON, checksums, packed weights, the validation
// layer) and, for files it accepts, the engine's planning (graph rewrites, shapes, oneDNN
// primitive creation, the arena) at the file's input size. No inference is run (slow, and the
// planning is where malformed graphs used to crash). Seeds: tests/corpus/make_corpus.py --seeds.
#include <cstdint>
#include <vector>

#include "leanseg/error.h"
#include "leanseg/runtime.h"
#include "leanseg/runtime_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  leanseg::RuntimeModel model;
  try {
    model = leanseg::parse_runtime_model(std::vector<unsigned char>(data, data + size), "fuzz.lsr");
  } catch (const leanseg::Error&) {
    return 0;
  }
  try {
    leanseg::runtime::EngineOptions options;
    options.threads = 1;
    options.winograd = false;
    leanseg::runtime::Engine engine = leanseg::runtime::Engine::from_model(std::move(model), options);
    (void)engine.arena_bytes();
    (void)engine.flops();
  } catch (const leanseg::Error&) {
  }
  return 0;
}
