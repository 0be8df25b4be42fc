// The conventions both commands share (src/util/cli_conventions.h): a description on every
// option, -o for every --out, one --threads (0 = every core), one --qat BITS, and the exit codes
// (0 success, 1 the command failed, 2 a usage error) of `leanseg` and `leanseg-infer` alike.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cli/app.h"
#include "infer/options.h"
#include "model_test_util.h"
#include "util/cli_conventions.h"

namespace leanseg {
namespace {

using test::run_command;

// One command line of `exe`, the exit code it must end with and a text its output must contain.
struct ExitCase {
  std::string args;
  int code;
  std::string says;
};

void expect_exit_codes(const std::string& exe, const std::vector<ExitCase>& cases) {
  for (const auto& c : cases) {
    const auto r = run_command(exe + " " + c.args);
    EXPECT_EQ(r.code, c.code) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << c.args << "\n" << r.out;
  }
}

// Every option of the app and its subcommands, as "PATH: --name", with `pick` true.
template <class Pick>
void walk_options(const CLI::App& app, const std::string& path, Pick pick, std::vector<std::string>& out) {
  for (const CLI::Option* opt : app.get_options())
    if (pick(*opt)) out.push_back(path + ": " + opt->get_name());
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    walk_options(*sub, path + " " + sub->get_name(), pick, out);
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += "\n  " + x;
  return s;
}

struct BothApps : ::testing::Test {
  CLI::App leanseg{"leanseg", "leanseg"};
  CLI::App infer{"leanseg-infer", "leanseg-infer"};
  infer::Options infer_options;
  void SetUp() override {
    cli::build_app(leanseg);
    infer::add_options(infer, infer_options);
  }
};

TEST_F(BothApps, EveryOptionHasADescription) {
  for (const CLI::App* app : {&leanseg, &infer}) {
    const auto missing = cli_conventions::options_without_description(*app);
    EXPECT_TRUE(missing.empty()) << "options without help text:" << joined(missing);
  }
  // The walk reaches the subcommands' options: train's --epochs is among them.
  std::vector<std::string> all;
  walk_options(leanseg, "leanseg", [](const CLI::Option&) { return true; }, all);
  EXPECT_NE(std::find(all.begin(), all.end(), "leanseg train: --epochs"), all.end()) << joined(all);
}

TEST_F(BothApps, EveryOutHasTheShortFormO) {
  for (const CLI::App* app : {&leanseg, &infer}) {
    std::vector<std::string> without_o, outs;
    const auto is_out = [](const CLI::Option& o) { return o.check_lname("out"); };
    walk_options(*app, app->get_name(), is_out, outs);
    walk_options(*app, app->get_name(), [&](const CLI::Option& o) { return is_out(o) && !o.check_sname("o"); }, without_o);
    EXPECT_FALSE(outs.empty());
    EXPECT_TRUE(without_o.empty()) << "--out without -o:" << joined(without_o);
  }
}

// One --threads: the top level's in leanseg (its subcommands take it through fallthrough), the
// app's in leanseg-infer; no other visible option that takes a value names threads (leanseg-infer's
// flag --fixed-threads sets no count: it only says the engine must not run on fewer).
TEST_F(BothApps, OneThreadsOptionAcceptingZero) {
  for (const CLI::App* app : {&leanseg, &infer}) {
    std::vector<std::string> threads;
    walk_options(*app, app->get_name(),
                 [](const CLI::Option& o) {
                   return o.get_name().find("threads") != std::string::npos && !o.get_group().empty() &&
                          o.get_items_expected_max() > 0;
                 },
                 threads);
    ASSERT_EQ(threads.size(), 1u) << joined(threads);
    EXPECT_EQ(threads[0], app->get_name() + ": --threads");
  }
  EXPECT_NE(infer.get_option("--fixed-threads"), nullptr);
  EXPECT_EQ(infer.get_option("--fixed-threads")->get_items_expected_max(), 0) << "a flag";
  EXPECT_TRUE(leanseg.get_subcommand("bench")->get_fallthrough());
}

TEST_F(BothApps, QatTakesBitsInTrainAndCompress) {
  for (const char* sub : {"train", "compress"}) {
    const CLI::Option* qat = leanseg.get_subcommand(sub)->get_option("--qat");
    EXPECT_EQ(qat->get_type_name(), "BITS:{8,4,2}") << sub;
    EXPECT_EQ(qat->get_items_expected_min(), 1) << sub << ": --qat takes a value";
  }
}

// Usage errors exit 2, failures 1, --help 0: leanseg.
TEST(CliExitCodes, LeansegUsageErrorsExitTwoFailuresOne) {
  const std::string exe = LEANSEG_CLI_PATH;
  const std::vector<ExitCase> cases = {
      {"--help", 0, "Subcommands:"},
      {"info --no-such-option", 2, "--no-such-option"},        // CLI11: unknown option
      {"eval --model m.safetensors", 2, "--data is required"},  // CLI11: missing option
      {"--threads 2000 info", 2, "--threads"},                  // CLI11: out of range
      {"info --threads 0 --model unet --json", 0, "\"params_total\""},  // --threads after the subcommand, 0 = every core
      {"compress -m m.safetensors -o x.safetensors --quant int8 --qat 3", 2, "--qat"},  // not a bit-width
      {"compress -m m.safetensors -o x.safetensors --quant int8 --qat 4 --finetune-epochs 1 --data d", 2,
       "--quant int4"},                                         // leanseg's usage check: --qat BITS against --quant
      {"info --model unet --input-size 100", 2, "multiple of 32"},
      {"export -m unet-32 --format runtime --input-size 100 -o x.lsr", 2, "multiple of 32"},
      {"export -m unet-32 --format onnx --opset 10 -o x.onnx", 2, "--opset 10: outside the supported range 11–17"},
      {"predict -m unet-32 -o out --shard 1/x some.png", 2, "--shard"},  // malformed I/N
      {"info --model /no/such/model.safetensors", 1, "/no/such/model.safetensors"},  // a failure, not usage
  };
  expect_exit_codes(exe, cases);
}

// The same policy in leanseg-infer (no LibTorch): usage 2, failures 1, --help 0.
TEST(CliExitCodes, InferUsageErrorsExitTwoFailuresOne) {
  test::TempDir dir;
  const std::string lsr = dir.file("m.lsr");
  ASSERT_EQ(run_command(std::string(LEANSEG_CLI_PATH) + " export -m unet-32 --format runtime --input-size 32 -o " + lsr).code, 0);
  const std::string exe = LEANSEG_INFER_PATH;
  const std::vector<ExitCase> cases = {
      {"--help", 0, "--threads"},
      {lsr + " --bench --no-such-option", 2, "--no-such-option"},
      {"--bench", 2, "model is required"},
      {lsr + " --bench --threads 5000", 2, "--threads"},
      {lsr + " --bench --precision fp8", 2, "fp8"},
      {lsr + " some.png -o " + dir.file("out") + " --profile", 2, "apply to --bench only"},  // UsageError
      {lsr + " some.png", 2, "--out is required"},
      {lsr + " some.png -o " + dir.file("out") + " --shard 3/2", 2, "--shard"},  // I outside 0..N-1
      {lsr + " --bench --threads 0 --runs 1 --warmup 0", 0, "median"},
      {dir.file("missing.lsr") + " --bench", 1, "missing.lsr"},  // a failure, not usage
  };
  expect_exit_codes(exe, cases);
}

}  // namespace
}  // namespace leanseg
