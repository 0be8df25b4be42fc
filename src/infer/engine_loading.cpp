// Loading the engine for leanseg-infer (both the command and its image plugin).
#include <cstdio>

#include "infer.h"
#include "leanseg/error.h"

namespace leanseg::infer {

runtime::Engine load_engine(const Options& o) {
  runtime::EngineOptions eo;
  try {
    eo.precision = runtime::precision_from_name(o.precision);
  } catch (const Error& e) {
    throw Error(std::string("--precision: ") + e.what());
  }
  eo.threads = o.threads;
  eo.winograd = o.winograd;
  eo.adapt_threads = o.adapt_threads;
  try {
    runtime::Engine engine = runtime::Engine::load(o.model, eo);
    if (!engine.model().has_checksums)
      std::fprintf(stderr, "leanseg-infer: note: '%s' has no checksums (written before they existed): its weights "
                           "are not verified; export it again to add them\n", o.model.c_str());
    return engine;
  } catch (const std::exception& e) {  // oneDNN's own errors included
    throw Error(naming(e.what(), "runtime model", o.model));
  }
}

}  // namespace leanseg::infer
