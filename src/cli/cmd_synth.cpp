// `leanseg synth ultrasound|worms --out DIR -n N [--size HxW] [--seed S]`: the synthetic
// generators (src/data/synthetic.cpp) written to disk as a dataset the other commands read:
// ultrasound in the HC18 layout (with pixel sizes, so HC comes out in mm), worms as image/mask
// folders.
#include <cstdio>
#include <iostream>

#include "cli_common.h"
#include "commands.h"
#include "leanseg/data.h"
#include "leanseg/error.h"

namespace leanseg::cli {
namespace {

struct SynthArgs {
  std::string kind, out, size;
  int count = 0;
  int64_t seed = 1;
};

// "HxW" or "S" (square) → height, width.
std::pair<int, int> parse_size(const std::string& text, int default_h, int default_w) {
  if (text.empty()) return {default_h, default_w};
  int h = 0, w = 0;
  char x = 0, rest = 0;
  const int n = std::sscanf(text.c_str(), "%d%c%d%c", &h, &x, &w, &rest);
  if (n == 1) w = h;
  require_usage((n == 1 || (n == 3 && (x == 'x' || x == 'X'))) && h >= 32 && w >= 32 && h <= 4096 && w <= 4096,
                "--size: expected HxW (or one side) between 32 and 4096, got '" + text + "'");
  return {h, w};
}

void run_synth(const SynthArgs& a) {
  const bool ultrasound = a.kind == "ultrasound";
  const auto [h, w] = parse_size(a.size, ultrasound ? 192 : 256, 256);
  const uint64_t seed = static_cast<uint64_t>(a.seed);
  const Dataset d = ultrasound ? make_synthetic_ultrasound(a.count, h, w, seed) : make_synthetic_worms(a.count, h, w, seed);
  write_dataset(d, a.out);
  std::cout << "wrote " << d.samples.size() << " " << d.kind << " images (" << w << "x" << h << ", seed " << seed << ") to "
            << a.out << (ultrasound ? " (HC18 layout, pixel sizes and HC in the CSV)" : " (images/ and masks/)") << "\n";
}

}  // namespace

void add_synth(CLI::App& app) {
  auto a = std::make_shared<SynthArgs>();
  auto* cmd = app.add_subcommand("synth", "Write a synthetic dataset to disk (ultrasound heads or worms)");
  cmd->add_option("kind", a->kind, "ultrasound (HC18 layout) or worms (images/ + masks/)")
      ->required()
      ->check(CLI::IsMember({"ultrasound", "worms"}));
  cli_conventions::add_out_option(*cmd, a->out, "New (or empty) folder to write")->required();
  cmd->add_option("-n,--count", a->count, "Number of images")->required()->check(CLI::Range(1, 100000));
  cmd->add_option("--size", a->size, "HxW in pixels (default 192x256 ultrasound, 256x256 worms)");
  cmd->add_option("--seed", a->seed, "Generator seed (image i is the same for any -n)")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->callback([a] { run_synth(*a); });
}

}  // namespace leanseg::cli
