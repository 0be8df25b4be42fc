// Conventions both commands follow (`leanseg`, src/cli; `leanseg-infer`, src/infer): one
// --threads, -o for every --out, a description on every option, one exit-code policy.
// Header-only on CLI11, so that leanseg-infer shares it without linking anything.
//
// Exit codes: 0 success; 1 the command could not do its job (a file missing or malformed, a
// value only the model or the data can reject, --skip-errors with failures); 2 a usage error:
// the command line itself is wrong (unknown option, missing or malformed value, a value outside
// its listed set or range, options that do not go together).
#pragma once
#include <CLI/CLI.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "leanseg/error.h"

namespace leanseg {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// An error in how the command was called: options that do not go together, a value outside
// what the option accepts. The commands exit with kExitUsage.
class UsageError : public Error {
 public:
  using Error::Error;
};
inline void require_usage(bool cond, const std::string& what) {
  if (!cond) throw UsageError(what);
}

namespace cli_conventions {

// Runs `check`, code that looks at option values only (parses them, checks them together), and
// rethrows its Errors as UsageErrors.
template <class Check>
auto as_usage_error(Check&& check) -> decltype(check()) {
  try {
    return check();
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

// --threads N (0 = every core), the same name and range in both commands.
inline CLI::Option* add_threads_option(CLI::App& app, int& threads, const std::string& what) {
  return app.add_option("--threads", threads, "Threads for " + what + " (0 = every core)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
}

// --out,-o.
inline CLI::Option* add_out_option(CLI::App& app, std::string& out, const std::string& description) {
  return app.add_option("--out,-o", out, description);
}

// A CLI11 parse error (usage) or --help: prints what CLI11 prints and returns 0 for --help and
// --version, kExitUsage for everything else.
inline int exit_code_of(const CLI::App& app, const CLI::ParseError& e) {
  return app.exit(e) == 0 ? 0 : kExitUsage;
}
// A UsageError: printed like CLI11's own usage errors.
inline int report_usage_error(const std::string& program, const UsageError& e) {
  std::cerr << program << ": usage error: " << e.what() << "\nRun with --help for more information.\n";
  return kExitUsage;
}

// Every option of `app` and its subcommands (recursively) that has no description, as
// "SUBCOMMAND PATH: --name" (tests check that the list is empty).
inline void options_without_description(const CLI::App& app, const std::string& path, std::vector<std::string>& out) {
  for (const CLI::Option* opt : app.get_options())
    if (opt->get_description().empty()) out.push_back(path + ": " + opt->get_name());
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    options_without_description(*sub, path + " " + sub->get_name(), out);
}
inline std::vector<std::string> options_without_description(const CLI::App& app) {
  std::vector<std::string> out;
  options_without_description(app, app.get_name().empty() ? "(top level)" : app.get_name(), out);
  return out;
}

}  // namespace cli_conventions
}  // namespace leanseg
