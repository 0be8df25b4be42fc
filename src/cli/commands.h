// Sub-commands of the `leanseg` CLI. Each add_* registers its options on the app and sets the
// callback that runs it; errors propagate as leanseg::Error and are printed by main().
#pragma once
#include <CLI/CLI.hpp>

namespace leanseg::cli {

void add_info(CLI::App& app);
void add_doctor(CLI::App& app);
void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_predict(CLI::App& app);
void add_merge_shards(CLI::App& app);
void add_demo(CLI::App& app);
void add_export(CLI::App& app);
void add_compress(CLI::App& app);
void add_latency(CLI::App& app);
void add_bench(CLI::App& app);
void add_synth(CLI::App& app);

}  // namespace leanseg::cli
