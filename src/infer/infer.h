// `leanseg-infer`: segmentation and benchmarking with the LibTorch-free runtime (runtime.h).
#pragma once
#include <string>
#include <vector>

#include "leanseg/preprocessing.h"
#include "leanseg/runtime.h"

namespace leanseg::infer {

struct Options {
  std::string model;                // .lsr file
  std::vector<std::string> images;  // files, folders or a.tif+b.tif
  std::string out;                  // output folder (segmentation)
  std::string precision = "fp32";
  int threads = 0;                  // 0: every core
  bool overlay = false;
  bool bench = false, json = false;
  int runs = 30, warmup = 3;
};

// Loads the engine; errors name the model file.
runtime::Engine load_engine(const Options& o);
// The model's preprocessing, validated, with its channel count checked against the graph.
Preprocessing model_preprocessing(const runtime::Engine& engine, const std::string& path);
// Threads the engine really uses (--threads, or the CPUs this process may run on).
int effective_threads(int requested);

void segment_images(const Options& o);
void run_bench(const Options& o);

}  // namespace leanseg::infer
