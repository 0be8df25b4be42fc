// leanseg-infer: segment images (or benchmark) with a `.lsr` runtime model on the LibTorch-free
// oneDNN engine. Links no LibTorch: the binary and its libraries are what a deployment ships.
//   leanseg-infer MODEL.lsr IMAGE... --out DIR [--precision fp32|bf16|int8] [--no-winograd] [--threads N] [--tta none|h|hv] [--postprocess P] [--overlay] [--pixel-size MM] [--skip-errors] [--shard I/N] [--skip-existing]
//   leanseg-infer MODEL.lsr --bench [--precision P] [--no-winograd] [--threads N] [--runs N] [--warmup N] [--profile] [--json]
#include <dlfcn.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "infer.h"
#include "infer/options.h"
#include "leanseg/error.h"
#include "leanseg/memory.h"
#include "leanseg/process.h"

namespace leanseg::infer {

// The image codecs (OpenCV imgcodecs and its dependency tree) are loaded only here: --bench
// measures the engine without them. The plugin stays loaded until exit.
void segment_images_with_plugin(const Options& o) {
  // Beside the executable in the build tree; installed: <prefix>/bin, <prefix>/<libdir>/leanseg.
  std::string path = executable_dir() + "/libleanseg-infer-images.so";
#ifdef LEANSEG_PLUGIN_INSTALL_DIR
  if (!std::filesystem::exists(path))
    path = executable_dir() + "/" LEANSEG_PLUGIN_INSTALL_DIR "/libleanseg-infer-images.so";
#endif
  void* plugin = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (plugin == nullptr) throw Error("cannot load the image plugin '" + path + "': " + dlerror());
  using Segment = void (*)(const Options&);
  auto* segment = reinterpret_cast<Segment>(dlsym(plugin, "leanseg_infer_segment_images"));
  if (segment == nullptr) throw Error("'" + path + "' has no leanseg_infer_segment_images: " + dlerror());
  segment(o);
}

}  // namespace leanseg::infer

int main(int argc, char** argv) {
  leanseg::keep_freed_memory();  // image buffers of a folder run stay mapped: see memory.h
  CLI::App app{"leanseg-infer: segment images with a leanseg runtime model (.lsr) on the CPU, without LibTorch"};
  leanseg::infer::Options o;
  const leanseg::infer::Given given = leanseg::infer::add_options(app, o);
  try {
    app.parse(argc, argv);
    leanseg::infer::check_mode_options(o, given);
    if (o.bench) leanseg::infer::run_bench(o);
    else leanseg::infer::segment_images_with_plugin(o);
  } catch (const CLI::ParseError& e) {
    return leanseg::cli_conventions::exit_code_of(app, e);
  } catch (const leanseg::UsageError& e) {
    return leanseg::cli_conventions::report_usage_error("leanseg-infer", e);
  } catch (const std::exception& e) {
    std::cerr << "leanseg-infer: error: " << e.what() << "\n";
    return leanseg::kExitFailure;
  }
  return 0;
}
