// libFuzzer: model metadata as a model file or .lsr carries it (JSON text): the preprocessing
// validation (Preprocessing::from_json) and the runtime graph validation
// (graph_structure_from_json). The registry's config rules (ModelConfig, LibTorch) are covered
// by the corpus (tests/corpus), not here: this build is LibTorch-free.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "leanseg/error.h"
#include "leanseg/preprocessing.h"
#include "leanseg/runtime_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  try {
    const auto p = leanseg::Preprocessing::from_json(j.contains("preprocessing") ? j["preprocessing"] : j, "fuzz");
    // What validates must round-trip.
    (void)leanseg::Preprocessing::from_json(p.to_json(), "fuzz (round trip)");
  } catch (const leanseg::Error&) {
  }
  try {
    (void)leanseg::graph_structure_from_json(j.contains("graph") ? j["graph"] : j, "fuzz");
  } catch (const leanseg::Error&) {
  }
  return 0;
}
