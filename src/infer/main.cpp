// leanseg-infer: segment images (or benchmark) with a `.lsr` runtime model on the LibTorch-free
// oneDNN engine. Links no LibTorch: the binary and its libraries are what a deployment ships.
//   leanseg-infer MODEL.lsr IMAGE... --out DIR [--precision fp32|bf16|int8] [--no-winograd] [--threads N] [--tta none|h|hv] [--postprocess P] [--overlay] [--pixel-size MM] [--skip-errors] [--shard I/N] [--skip-existing]
//   leanseg-infer MODEL.lsr --bench [--precision P] [--no-winograd] [--threads N] [--runs N] [--warmup N] [--profile] [--json]
#include <dlfcn.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "infer.h"
#include "leanseg/error.h"
#include "leanseg/memory.h"
#include "leanseg/process.h"

namespace {

struct Given {
  CLI::Option *out, *runs, *warmup, *tta, *postprocess, *batch, *pixel_size, *page, *channel, *intensity_range;
};

Given add_options(CLI::App& app, leanseg::infer::Options& o) {
  Given g{};
  app.add_option("model", o.model, "Runtime model (.lsr, from `leanseg export --format runtime`)")->required();
  app.add_option("images", o.images, "Images or folders (a.tif+b.tif for multi-channel models)");
  g.out = app.add_option("--out,-o", o.out, "Output folder: <stem>_mask.png, <stem>_prob.png (and _overlay.png)");
  app.add_option("--precision", o.precision, "fp32, bf16 or int8 (int8 needs a calibrated export)")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "Threads (0: every core)")->check(CLI::Range(0, 1024))->capture_default_str();
  app.add_flag("--winograd,!--no-winograd", o.winograd,
               "fp32: the Winograd kernel for 3x3 convs on large maps (default with AVX-512 or AVX2 + FMA, "
               "where it pays; --no-winograd: direct convs only)");
  g.tta = app.add_option("--tta", o.tta, "Test-time mirroring: none, h (left-right; 2 passes) or hv (4 passes), averaged")
              ->check(CLI::IsMember({"none", "h", "hv"}))
              ->capture_default_str();
  g.postprocess = app.add_option("--postprocess", o.postprocess,
                                 "Mask post-processing: none, largest (largest connected component) or ellipse (the "
                                 "filled ellipse fitted to it, as HC18 entries measure the head)")
                      ->check(CLI::IsMember({"none", "largest", "ellipse"}))
                      ->capture_default_str();
  app.add_flag("--overlay", o.overlay, "Also write the mask contour drawn on the image");
  g.pixel_size = app.add_option("--pixel-size", o.pixel_size,
                                "mm per pixel: report the head circumference (the ellipse fitted to the mask) in mm")
                     ->check(CLI::PositiveNumber);
  g.page = app.add_option("--page", o.page, "Page of multi-page TIFFs, from 0 (default 0, with a warning)")
               ->check(CLI::NonNegativeNumber);
  g.channel = app.add_option("--channel", o.channel,
                             "Channel (sample) of multi-channel TIFFs, from 0 in file order; required for TIFFs with "
                             "several non-colour channels")
                  ->check(CLI::NonNegativeNumber);
  g.intensity_range = app.add_option("--intensity-range", o.intensity_range,
                                     "LO,HI: float TIFF pixels map LO -> 0 and HI -> 1 (clamped); default the model's "
                                     "recorded range, else each image's own min..max");
  app.add_flag("--skip-errors", o.skip_errors,
               "Report an image that fails (file and reason) and go on with the others; exits 1 if any failed");
  app.add_option("--shard", o.shard,
                 "I/N: only the images whose file name hashes to shard I of N (N array jobs cover the inputs once); "
                 "writes OUT/shard-I-of-N.json instead of predictions.json (`leanseg merge-shards`)");
  app.add_flag("--skip-existing", o.skip_existing,
               "Skip images whose OUT/<stem>_prediction.json exists (written after their images): a re-run resumes");
  app.add_flag("--bench", o.bench, "Time the engine on random input of the model's input size");
  g.runs = app.add_option("--runs", o.runs, "--bench: timed runs")->check(CLI::Range(1, 1000000))->capture_default_str();
  g.warmup = app.add_option("--warmup", o.warmup, "--bench: untimed runs first")->check(CLI::Range(0, 1000000))->capture_default_str();
  g.batch = app.add_option("--batch", o.batch, "--bench: images per call (Engine::run_batch); throughput is images/s")
                ->check(CLI::Range(1, 4096))
                ->capture_default_str();
  app.add_flag("--json", o.json, "--bench: print JSON");
  app.add_flag("--profile", o.profile, "--bench: also time every step (median over --runs more runs), slowest first");
  return g;
}

// Options of the other mode are refused rather than silently ignored.
void check_mode_options(const leanseg::infer::Options& o, const Given& g) {
  if (o.bench) {
    leanseg::require(!o.overlay && !o.skip_errors && g.out->count() == 0 && g.tta->count() == 0 &&
                         g.postprocess->count() == 0 && g.pixel_size->count() == 0 && o.shard.empty() && !o.skip_existing &&
                         g.page->count() == 0 && g.channel->count() == 0 && g.intensity_range->count() == 0,
                     "--out, --overlay, --skip-errors, --pixel-size, --page, --channel, --intensity-range, --shard, "
                     "--skip-existing, --tta and --postprocess apply "
                     "to segmentation, not --bench");
  } else {
    leanseg::require(!o.json && !o.profile && g.runs->count() == 0 && g.warmup->count() == 0 && g.batch->count() == 0,
                     "--json, --profile, --runs, --warmup and --batch apply to --bench only");
  }
}

}  // namespace

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
  const Given given = add_options(app, o);
  try {
    app.parse(argc, argv);
    check_mode_options(o, given);
    if (o.bench) leanseg::infer::run_bench(o);
    else leanseg::infer::segment_images_with_plugin(o);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;  // --help is not an error; every usage error exits 1
  } catch (const std::exception& e) {
    std::cerr << "leanseg-infer: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
