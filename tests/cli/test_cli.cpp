// End-to-end checks of the `leanseg` binary: exit codes, JSON keys, files written, messages.
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "util/openmp_wait_policy.h"
#include "leanseg/model_file.h"
#include "leanseg/quantized_libtorch.h"
#include "model_test_util.h"

namespace leanseg {
namespace {

using test::CliRun;
CliRun run_cli(const std::string& args) { return test::run_cli(args, 2); }

TEST(Cli, InfoJsonHasTheDocumentedKeys) {
  const CliRun r = run_cli("info --model mobilenet-aspp-se-unet --input-size 256 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* k : {"params_total", "params_trainable", "flops", "stages"}) EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["params_total"], 10012421);
  EXPECT_EQ(j["stages"].size(), 13u);
  EXPECT_EQ(j["stages"][0]["name"], "enc0");
  EXPECT_GT(j["flops"].template get<double>(), 8.7e9);
  EXPECT_LT(j["flops"].template get<double>(), 8.9e9);
}

TEST(Cli, DoctorReportsThreadsAndKeepsOpenBlasSingleThreaded) {
  const CliRun r = run_cli("doctor");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("threads           2 (intra-op)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("oneDNN"), std::string::npos) << r.out;
  // run_cli passes --threads 2. LibTorch parallelises around BLAS calls; a multi-threaded OpenBLAS inside would oversubscribe.
  if (r.out.find("openblas") != std::string::npos)
    EXPECT_NE(r.out.find("OpenBLAS threads  1"), std::string::npos) << r.out;
}

// The executables set OpenMP's wait policy (src/util/openmp_wait_policy.c) before libgomp reads
// its environment: libgomp's own report (OMP_DISPLAY_ENV) shows it in both commands, and a
// user's setting is left alone. doctor measures an idle thread's spin, short by default, the
// whole 30 ms wait under OMP_WAIT_POLICY=active (so the measurement sees what libgomp does).
TEST(Cli, LibgompItselfReadsTheExecutablesWaitPolicy) {
  const std::string unset = "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose ";
  const std::string bound = "OMP_WAIT_POLICY = 'PASSIVE'";
  for (const std::string exe : {LEANSEG_CLI_PATH, LEANSEG_INFER_PATH}) {
    const CliRun r = test::run_command(unset + exe + " --help");
    EXPECT_NE(r.out.find(bound), std::string::npos) << exe << ":\n" << r.out;
    const CliRun user = test::run_command(unset + "GOMP_SPINCOUNT=1234 " + exe + " --help");
    EXPECT_NE(user.out.find("GOMP_SPINCOUNT = '1234'"), std::string::npos) << exe << ":\n" << user.out;
  }
}

TEST(Cli, DoctorMeasuresBoundedOpenMpSpinningAndKeepsTheUsersPolicy) {
  const std::string unset = "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT ";
  const CliRun bounded = test::run_command(unset + LEANSEG_CLI_PATH + " doctor");
  ASSERT_EQ(bounded.code, 0) << bounded.out;
  EXPECT_NE(bounded.out.find(std::string("OpenMP waiting    ") + LEANSEG_OPENMP_WAIT_SETTING + " (leanseg's default)"),
            std::string::npos)
      << bounded.out;
  EXPECT_EQ(bounded.out.find("WARNING: OpenMP threads spin"), std::string::npos) << bounded.out;
  const CliRun active = test::run_command(unset + "OMP_WAIT_POLICY=active " + LEANSEG_CLI_PATH + " doctor");
  ASSERT_EQ(active.code, 0) << active.out;
  EXPECT_NE(active.out.find("OpenMP waiting    OMP_WAIT_POLICY=active (yours)"), std::string::npos) << active.out;
  EXPECT_NE(active.out.find("WARNING: OpenMP threads spin"), std::string::npos) << active.out;
}

TEST(Cli, ErrorsAreClearAndExitNonZero) {
  CliRun r = run_cli("info --model resnet");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("neither a model file nor a model name"), std::string::npos) << r.out;
  r = run_cli("info --model unet --input-size 100");
  EXPECT_EQ(r.code, 2);  // a usage error
  EXPECT_NE(r.out.find("multiple of 32"), std::string::npos) << r.out;
  r = run_cli("eval --model /nonexistent.safetensors --data /tmp");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("no such file"), std::string::npos) << r.out;
}

// data/images and data/masks of `dir`: three 90x120 images with a bright disc each, its mask.
void write_disc_folder_dataset(const test::TempDir& dir) {
  std::filesystem::create_directories(dir.path / "data/images");
  std::filesystem::create_directories(dir.path / "data/masks");
  for (int i = 0; i < 3; ++i) {
    cv::Mat img(90, 120, CV_8UC1, cv::Scalar(30)), mask(90, 120, CV_8UC1, cv::Scalar(0));
    cv::circle(img, {60, 45}, 20 + 5 * i, cv::Scalar(220), cv::FILLED);
    cv::circle(mask, {60, 45}, 20 + 5 * i, cv::Scalar(255), cv::FILLED);
    cv::imwrite(dir.file("data/images/im" + std::to_string(i) + ".png"), img);
    cv::imwrite(dir.file("data/masks/im" + std::to_string(i) + ".png"), mask);
  }
}

// A folder dataset with a disc per image, and an (untrained) model file: eval and predict run
// through the whole pipeline and write what they promise.
TEST(Cli, PredictAndEvalOnAFolderDataset) {
  test::TempDir dir;
  write_disc_folder_dataset(dir);
  test::save_tiny_model(dir.file("m.safetensors"), 2, "stretch", 0);

  CliRun r = run_cli("eval --model " + dir.file("m.safetensors") + " --data " + dir.file("data") + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  for (const char* k : {"dice", "iou", "hc_mae_mm", "hd_mm", "hd95_mm", "assd_mm", "n_images", "latency_median_ms", "peak_rss_bytes", "file_bytes"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["n_images"], 3);
  EXPECT_TRUE(j["hc_mae_mm"].is_null());  // no pixel size in a plain folder

  r = run_cli("predict --model " + dir.file("m.safetensors") + " " + dir.file("data/images") + " --out " +
              dir.file("pred") + " --overlay --pixel-size 0.1");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* f : {"im0_mask.png", "im0_prob.png", "im0_overlay.png", "im2_mask.png", "predictions.json"})
    EXPECT_TRUE(std::filesystem::exists(dir.file(std::string("pred/") + f))) << f;
  const cv::Mat mask = cv::imread(dir.file("pred/im1_mask.png"), cv::IMREAD_UNCHANGED);
  EXPECT_EQ(mask.size(), cv::Size(120, 90));  // original size, whatever the model input
  r = run_cli("predict --model " + dir.file("m.safetensors") + " " + dir.file("missing.png") + " --out " + dir.file("pred"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("missing.png"), std::string::npos) << r.out;

  // The exported runtime file scores like the model file, and its masks agree with it.
  r = run_cli("export --model " + dir.file("m.safetensors") + " --format runtime --out " + dir.file("m.lsr"));
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_cli("eval --model " + dir.file("m.lsr") + " --data " + dir.file("data") + " --reference-model " +
              dir.file("m.safetensors") + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto rt = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_GE(rt["mask_agreement"].get<double>(), 0.999);
  EXPECT_NEAR(rt["dice"].get<double>(), j["dice"].get<double>(), 1e-3);
  // Test-time mirroring is recorded in the report.
  r = run_cli("eval --model " + dir.file("m.lsr") + " --data " + dir.file("data") + " --tta h --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out.substr(r.out.find('{')))["tta"], "h");
  EXPECT_EQ(rt["tta"], "none");
  // --no-winograd scores the runtime with direct convolutions only (the default is what
  // `leanseg-infer` deploys: Winograd); only the runtime's fp32 has the choice.
  // A model-file reference beside it is LibTorch's business: the flag does not apply to it.
  r = run_cli("eval --model " + dir.file("m.lsr") + " --data " + dir.file("data") + " --no-winograd --json" +
              " --reference-model " + dir.file("m.safetensors"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NEAR(nlohmann::json::parse(r.out.substr(r.out.find('{')))["dice"].get<double>(), rt["dice"].get<double>(), 1e-4);
  for (const std::string bad : {"--model " + dir.file("m.safetensors") + " --winograd",
                                "--model " + dir.file("m.lsr") + " --winograd --precision bf16"}) {
    r = run_cli("eval " + bad + " --data " + dir.file("data"));
    EXPECT_EQ(r.code, 2) << bad;
    EXPECT_NE(r.out.find("--winograd/--no-winograd select"), std::string::npos) << r.out;
  }
  r = run_cli("eval --model " + dir.file("m.lsr") + " --data " + dir.file("data") + " --precision int8");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("--calibrate"), std::string::npos) << r.out;

  // LibTorch's quantized kernels on the model file: calibrated on the split's training images only.
  const std::string model_int8 = "eval --model " + dir.file("m.safetensors") + " --data " + dir.file("data") + " --precision int8";
  r = run_cli(model_int8);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--split"), std::string::npos) << r.out;
  if (quantized_engines().empty()) return;
  std::ofstream(dir.file("split.json")) << R"({"train": ["im0", "im1"], "val": ["im2"]})";
  r = run_cli(model_int8 + " --split " + dir.file("split.json") + " --reference-model " + dir.file("m.safetensors") + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("convolutions quantized, 0 left in fp32"), std::string::npos) << r.out;
  const auto q = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(q["n_images"], 1);
  EXPECT_GE(q["mask_agreement"].get<double>(), 0.95);
  r = run_cli("latency --model " + dir.file("m.safetensors") + " --precision int8 --runs 2 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("\"libtorch-int8-"), std::string::npos) << r.out;
}

// Option errors end `train` before anything is written (issue 17: split.json was already there).
TEST(Cli, TrainRefusesUnsupportedQatBitsBeforeWritingAnything) {
  test::TempDir dir;
  write_disc_folder_dataset(dir);
  const CliRun r = run_cli("train --data " + dir.file("data") + " --out " + dir.file("run") +
                           " --model efficient-unet --input-size 64 --epochs 1 --no-progress --qat 3");
  EXPECT_EQ(r.code, 2) << r.out;  // CLI11 refuses the value: a usage error
  EXPECT_NE(r.out.find("--qat: 3 not in {8,4,2}"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("run"))) << "the run folder was written";
}

// Folder runs (issue 17): a corrupt image is skipped with --skip-errors (the others and their
// predictions.json written, exit 1 with a summary) and stops the run without it; two inputs of
// the same file stem are refused before anything is written.
TEST(Cli, PredictSkipErrorsAndSameStemInputs) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.path / "in");
  std::filesystem::create_directories(dir.path / "other");
  for (const char* name : {"in/a.png", "in/c.png", "other/a.png"}) {
    cv::Mat img(40, 50, CV_8UC1, cv::Scalar(30));
    cv::circle(img, {25, 20}, 10, cv::Scalar(220), cv::FILLED);
    cv::imwrite(dir.file(name), img);
  }
  std::ofstream(dir.file("in/b.png")) << "not an image";
  const std::string model = dir.file("m.safetensors");
  test::save_tiny_model(model, 2, "stretch", 0);
  const auto exists = [&](const std::string& f) { return std::filesystem::exists(dir.file(f)); };

  CliRun r = run_cli("predict --model " + model + " " + dir.file("in") + " --out " + dir.file("skip") + " --skip-errors");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("leanseg predict: skipped " + dir.file("in/b.png") + ": input image '" + dir.file("in/b.png") +
                       "' cannot be decoded"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("leanseg: error: 1 of 3 images failed"), std::string::npos) << r.out;
  EXPECT_TRUE(exists("skip/a_mask.png") && exists("skip/c_mask.png") && exists("skip/c_prob.png"));
  EXPECT_FALSE(exists("skip/b_mask.png") || exists("skip/b_prob.png"));
  const auto j = nlohmann::json::parse(std::ifstream(dir.file("skip/predictions.json")));
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["input"][0], dir.file("in/a.png"));
  EXPECT_EQ(j[1]["input"][0], dir.file("in/c.png"));

  r = run_cli("predict --model " + model + " " + dir.file("in") + " --out " + dir.file("stop"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("leanseg: error: input image '" + dir.file("in/b.png") + "' cannot be decoded"), std::string::npos)
      << r.out;
  EXPECT_TRUE(exists("stop/a_mask.png"));
  EXPECT_FALSE(exists("stop/b_mask.png") || exists("stop/c_mask.png") || exists("stop/predictions.json"));

  r = run_cli("predict --model " + model + " " + dir.file("in/a.png") + " " + dir.file("other/a.png") + " --out " +
              dir.file("clash"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("inputs '" + dir.file("in/a.png") + "' and '" + dir.file("other/a.png") +
                       "' have the same file stem"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(exists("clash"));
}

}  // namespace
}  // namespace leanseg
