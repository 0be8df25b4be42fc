#include "app.h"

#include "cli_common.h"
#include "commands.h"
#include "leanseg/threads.h"
#include "util/cli_conventions.h"

namespace leanseg::cli {

void build_app(CLI::App& app) {
  app.require_subcommand(1);
  // --threads is the top level's and every subcommand's (given before or after its name).
  app.fallthrough();
  // LibTorch may start with 1 intra-op thread here; default to every core, --threads overrides.
  set_cpu_threads(0);
  cli_conventions::add_threads_option(app, threads_option(), "LibTorch and the runtime")
      ->each([](const std::string& v) { set_cpu_threads(std::stoi(v)); });
  add_info(app);
  add_doctor(app);
  add_train(app);
  add_eval(app);
  add_predict(app);
  add_merge_shards(app);
  add_demo(app);
  add_export(app);
  add_compress(app);
  add_latency(app);
  add_bench(app);
  add_synth(app);
}

}  // namespace leanseg::cli
