// `leanseg-infer`: segmentation and benchmarking with the LibTorch-free runtime (runtime.h).
#pragma once
#include <string>
#include <vector>

#include "leanseg/runtime.h"

namespace leanseg::infer {

struct Options {
  std::string model;                // .lsr file
  std::vector<std::string> images;  // files, folders or a.tif+b.tif
  std::string out;                  // output folder (segmentation)
  std::string precision = "fp32";
  int threads = 0;                  // 0: every core
  bool winograd = runtime::winograd_is_fast_on_this_cpu();  // fp32: the Winograd kernel on large 3x3 convs
  bool adapt_threads = true;  // fewer threads while other processes hold the cores
  std::string postprocess = "none";  // mask post-processing: none, largest or ellipse (prediction.h)
  std::string tta = "none";        // test-time mirroring: none, h or hv (prediction.h)
  bool overlay = false;
  int page = -1, channel = -1;      // multi-page / multi-channel TIFFs (data.h ImageReadOptions)
  std::string intensity_range;      // "LO,HI" for float TIFFs; default: the model's, else each image's min..max
  double pixel_size = 0;            // mm per pixel: report the head circumference (fitted ellipse) in mm
  bool skip_errors = false;         // a folder run reports and skips images that fail
  std::string shard;                // "I/N": this job's share of the images (data/shard.h)
  bool skip_existing = false;       // images whose <stem>_prediction.json exists are done
  bool bench = false, json = false, profile = false;
  int runs = 30, warmup = 3;
  int batch = 1;                    // --bench: images per Engine::run_batch call
};

// Loads the engine; errors name the model file.
runtime::Engine load_engine(const Options& o);
// Threads the engine really uses (--threads, or the CPUs this process may run on).
int effective_threads(int requested);

// In the image plugin (segment.cpp): segments o.images into o.out.
void segment_images(const Options& o);
// Loads the plugin (libleanseg-infer-images.so next to the executable) and runs segment_images.
void segment_images_with_plugin(const Options& o);
void run_bench(const Options& o);

}  // namespace leanseg::infer
