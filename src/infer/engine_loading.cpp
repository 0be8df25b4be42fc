// Loading the engine for leanseg-infer (both the command and its image plugin).
#include "infer.h"
#include "leanseg/error.h"

namespace leanseg::infer {

std::string naming(const std::string& message, const std::string& what, const std::string& path) {
  if (message.find(path) != std::string::npos) return message;
  return what + " '" + path + "': " + message;
}

runtime::Engine load_engine(const Options& o) {
  runtime::EngineOptions eo;
  try {
    eo.precision = runtime::precision_from_name(o.precision);
  } catch (const Error& e) {
    throw Error(std::string("--precision: ") + e.what());
  }
  eo.threads = o.threads;
  eo.winograd = o.winograd;
  try {
    return runtime::Engine::load(o.model, eo);
  } catch (const std::exception& e) {  // oneDNN's own errors included
    throw Error(naming(e.what(), "runtime model", o.model));
  }
}

}  // namespace leanseg::infer
