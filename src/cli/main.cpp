#include <iostream>

#include <torch/torch.h>

#include "app.h"
#include "leanseg/error.h"
#include "leanseg/memory.h"
#include "util/cli_conventions.h"

// Exit codes (util/cli_conventions.h): 0 success, 1 the command failed, 2 a usage error.
int main(int argc, char** argv) {
  leanseg::keep_freed_memory();  // before the first large tensor: see memory.h
  CLI::App app{"leanseg: train, compress, evaluate and deploy efficient segmentation models on CPUs"};
  leanseg::cli::build_app(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return leanseg::cli_conventions::exit_code_of(app, e);
  } catch (const leanseg::UsageError& e) {
    return leanseg::cli_conventions::report_usage_error("leanseg", e);
  } catch (const leanseg::Error& e) {
    std::cerr << "leanseg: error: " << e.what() << "\n";
    return leanseg::kExitFailure;
  } catch (const c10::Error& e) {
    std::cerr << "leanseg: error (LibTorch): " << e.what_without_backtrace() << "\n";
    return leanseg::kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "leanseg: error: " << e.what() << "\n";
    return leanseg::kExitFailure;
  }
  return 0;
}
