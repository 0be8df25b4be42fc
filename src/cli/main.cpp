#include <iostream>
#include <thread>

#include <torch/torch.h>

#include "commands.h"
#include "leanseg/error.h"
#include "leanseg/memory.h"
#include "leanseg/threads.h"

int main(int argc, char** argv) {
  leanseg::keep_freed_memory();  // before the first large tensor: see memory.h
  CLI::App app{"leanseg: train, compress, evaluate and deploy efficient segmentation models on CPUs"};
  app.require_subcommand(1);
  // LibTorch may start with 1 intra-op thread here; default to every core, --threads overrides.
  leanseg::set_cpu_threads(0);
  app.add_option("--threads", "Intra-op threads (default: all cores)")
      ->check(CLI::Range(1, 256))
      ->each([](const std::string& v) { leanseg::set_cpu_threads(std::stoi(v)); });
  leanseg::cli::add_info(app);
  leanseg::cli::add_doctor(app);
  leanseg::cli::add_train(app);
  leanseg::cli::add_eval(app);
  leanseg::cli::add_predict(app);
  leanseg::cli::add_merge_shards(app);
  leanseg::cli::add_demo(app);
  leanseg::cli::add_export(app);
  leanseg::cli::add_compress(app);
  leanseg::cli::add_latency(app);
  leanseg::cli::add_bench(app);
  leanseg::cli::add_synth(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const leanseg::Error& e) {
    std::cerr << "leanseg: error: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "leanseg: error (LibTorch): " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "leanseg: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
