// The `leanseg` command line: every subcommand on one CLI11 app (main.cpp parses it; tests walk
// its options).
#pragma once
#include <CLI/CLI.hpp>

namespace leanseg::cli {

void build_app(CLI::App& app);

}  // namespace leanseg::cli
