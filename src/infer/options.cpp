// leanseg-infer's command line (main.cpp parses it; tests walk its options).
#include "infer/options.h"

namespace leanseg::infer {

Given add_options(CLI::App& app, Options& o) {
  Given g{};
  app.add_option("model", o.model, "Runtime model (.lsr, from `leanseg export --format runtime`)")->required();
  app.add_option("images", o.images, "Images or folders (a.tif+b.tif for multi-channel models)");
  g.out = cli_conventions::add_out_option(app, o.out, "Output folder: <stem>_mask.png, <stem>_prob.png (and _overlay.png)");
  app.add_option("--precision", o.precision, "fp32, bf16 or int8 (int8 needs a calibrated export)")
      ->check(CLI::IsMember({"fp32", "bf16", "int8"}))
      ->capture_default_str();
  cli_conventions::add_threads_option(app, o.threads, "the engine");
  app.add_flag("--adapt-threads,!--fixed-threads", o.adapt_threads,
               "Run on half the threads while other processes hold the cores, trying all again from time to time "
               "(default; --fixed-threads: always --threads, bit-reproducible)");
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
void check_mode_options(const Options& o, const Given& g) {
  if (o.bench) {
    require_usage(!o.overlay && !o.skip_errors && g.out->count() == 0 && g.tta->count() == 0 &&
                      g.postprocess->count() == 0 && g.pixel_size->count() == 0 && o.shard.empty() && !o.skip_existing &&
                      g.page->count() == 0 && g.channel->count() == 0 && g.intensity_range->count() == 0,
                  "--out, --overlay, --skip-errors, --pixel-size, --page, --channel, --intensity-range, --shard, "
                  "--skip-existing, --tta and --postprocess apply to segmentation, not --bench");
  } else {
    require_usage(!o.images.empty(), "no input images (give image files, folders, or --bench)");
    require_usage(!o.out.empty(), "--out is required to segment images");
    require_usage(!o.json && !o.profile && g.runs->count() == 0 && g.warmup->count() == 0 && g.batch->count() == 0,
                           "--json, --profile, --runs, --warmup and --batch apply to --bench only");
  }
}

}  // namespace leanseg::infer
