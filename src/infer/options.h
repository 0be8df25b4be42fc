// leanseg-infer's options (one CLI11 app, no subcommands) and the checks between them.
#pragma once
#include <CLI/CLI.hpp>

#include "infer/infer.h"
#include "util/cli_conventions.h"

namespace leanseg::infer {

// The options whose presence check_mode_options looks at.
struct Given {
  CLI::Option *out, *runs, *warmup, *tta, *postprocess, *batch, *pixel_size, *page, *channel, *intensity_range;
};
Given add_options(CLI::App& app, Options& o);
// Options of the other mode (segmentation or --bench) are refused rather than silently ignored:
// UsageError.
void check_mode_options(const Options& o, const Given& g);

}  // namespace leanseg::infer
