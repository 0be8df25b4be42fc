// End-to-end checks of the LibTorch-free `leanseg-infer` binary: it links no LibTorch, segments
// images at their original size with the same pipeline as `leanseg predict`, benchmarks with
// JSON output, and fails cleanly (message naming the file, exit code 1, no files written).
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "leanseg/model_file.h"
#include "leanseg/runtime.h"
#include "leanseg/runtime_file.h"
#include "leanseg/safetensors.h"
#include "model_test_util.h"

namespace leanseg {
namespace {
namespace fs = std::filesystem;

using test::run_command;

test::CliRun run_infer(const std::string& args) {
  return run_command(std::string(LEANSEG_INFER_PATH) + " --threads 2 " + args);
}

// A 100×80 grey image: a bright disc on a mid-grey background.
std::string write_test_image(const test::TempDir& dir, const std::string& name = "grey.png") {
  cv::Mat img(80, 100, CV_8UC1, cv::Scalar(90));
  cv::circle(img, {50, 40}, 20, cv::Scalar(200), cv::FILLED);
  const std::string path = dir.file(name);
  EXPECT_TRUE(cv::imwrite(path, img));
  return path;
}

size_t files_in(const fs::path& dir) {
  if (!fs::exists(dir)) return 0;
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

// unet-32 by registry name (random weights), exported by `leanseg export` at 64×64.
class InferCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    const auto r = test::run_cli("export --model unet-32 --format runtime --input-size 64 --out " + model(), 2);
    ASSERT_EQ(r.code, 0) << r.out;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string model() { return dir_->file("unet32.lsr"); }
  static test::TempDir* dir_;
};
test::TempDir* InferCli::dir_ = nullptr;

TEST(InferCliLinking, DoesNotLinkLibTorch) {
  const std::string infer = LEANSEG_INFER_PATH;
  const std::string plugin = std::filesystem::path(infer).parent_path().string() + "/libleanseg-infer-images.so";
  for (const std::string& binary : {infer, plugin}) {
    const test::CliRun r = run_command("ldd " + binary);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("libdnnl"), std::string::npos) << "ldd output looks wrong:\n" << r.out;
    EXPECT_EQ(r.out.find("libtorch"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("libc10"), std::string::npos) << r.out;
  }
  // Benchmarking loads no image codecs: OpenCV comes with the plugin, only when segmenting.
  const test::CliRun direct = run_command("ldd " + infer);
  EXPECT_EQ(direct.out.find("libopencv"), std::string::npos) << direct.out;
}

TEST_F(InferCli, WritesMaskProbabilityAndOverlayAtTheOriginalSize) {
  test::TempDir dir;
  const std::string image = write_test_image(dir);
  const auto r = run_infer(model() + " " + image + " --out " + dir.file("out") + " --overlay");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("100x80"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" ms"), std::string::npos) << r.out;
  for (const char* suffix : {"_mask.png", "_prob.png", "_overlay.png"}) {
    const cv::Mat m = cv::imread(dir.file(std::string("out/grey") + suffix), cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(m.empty()) << suffix;
    EXPECT_EQ(m.cols, 100) << suffix;
    EXPECT_EQ(m.rows, 80) << suffix;
  }
  const cv::Mat mask = cv::imread(dir.file("out/grey_mask.png"), cv::IMREAD_UNCHANGED);
  EXPECT_EQ(mask.type(), CV_8UC1);
  EXPECT_EQ(cv::countNonZero(mask == 0) + cv::countNonZero(mask == 255), 100 * 80) << "mask is not 0/255";
  EXPECT_EQ(cv::imread(dir.file("out/grey_overlay.png"), cv::IMREAD_UNCHANGED).channels(), 3);
  EXPECT_EQ(files_in(dir.path / "out"), 4u) << "temporary files left behind";  // and predictions.json
  const auto j = nlohmann::json::parse(std::ifstream(dir.file("out/predictions.json")));
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["input"][0], image);
  EXPECT_EQ(j[0]["mask"], dir.file("out/grey_mask.png"));
  EXPECT_EQ(j[0]["width"], 100);
  EXPECT_EQ(j[0]["height"], 80);
  EXPECT_EQ(j[0]["foreground_pixels"], cv::countNonZero(mask));
}

TEST_F(InferCli, BenchJsonHasTheDocumentedKeys) {
  const auto r = run_infer(model() + " --bench --runs 3 --warmup 1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  for (const char* k : {"median_ms", "p90_ms", "min_ms", "max_ms", "throughput", "peak_rss_bytes", "arena_bytes",
                        "weight_bytes", "precision", "threads", "adapt_threads", "runs_on_fewer_threads",
                        "median_waited_share"})
    EXPECT_TRUE(j.contains(k)) << k << " missing in " << r.out;
  EXPECT_EQ(j["adapt_threads"], true);  // the default; --fixed-threads turns it off
  EXPECT_GE(j["runs_on_fewer_threads"].get<int>(), 0);
  EXPECT_LE(j["runs_on_fewer_threads"].get<int>(), 3);
  EXPECT_LE(j["median_waited_share"].get<double>(), 1.0);
  const auto fixed = run_infer(model() + " --bench --runs 2 --warmup 0 --json --fixed-threads");
  ASSERT_EQ(fixed.code, 0) << fixed.out;
  const auto f = nlohmann::json::parse(fixed.out.substr(fixed.out.find('{')));
  EXPECT_EQ(f["adapt_threads"], false);
  EXPECT_EQ(f["runs_on_fewer_threads"], 0);
  EXPECT_EQ(f["median_waited_share"], -1);  // not measured with a fixed count
  const double median = j["median_ms"], p90 = j["p90_ms"], lo = j["min_ms"], hi = j["max_ms"];
  EXPECT_GT(lo, 0);
  EXPECT_LE(lo, median);
  EXPECT_LE(median, p90);
  EXPECT_LE(p90, hi);
  EXPECT_NEAR(j["throughput"].get<double>(), 1000.0 / median, 1e-6);
  EXPECT_GT(j["peak_rss_bytes"].get<int64_t>(), 0);
  EXPECT_GT(j["weight_bytes"].get<int64_t>(), 7000000 * 4);  // unet-32: 7.76 M fp32 parameters
  EXPECT_EQ(j["precision"], "fp32");
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["runs"], 3);
  EXPECT_EQ(j["height"], 64);
  // The Winograd kernel by default where it pays (AVX-512): unet-32's 3x3 convs on the 64x64
  // level (the first one has a single input channel and stays direct: 3) and the 32x32 level
  // (<= 256 -> 256 channels: 4); --winograd asks for it on any CPU.
  const bool fast = runtime::winograd_is_fast_on_this_cpu();
  EXPECT_EQ(j["winograd"], fast);
  EXPECT_EQ(j["winograd_layers"], fast ? 7 : 0);
  const auto w = run_infer(model() + " --bench --runs 1 --warmup 0 --json --winograd");
  ASSERT_EQ(w.code, 0) << w.out;
  EXPECT_EQ(nlohmann::json::parse(w.out.substr(w.out.find('{')))["winograd_layers"], 7);
  const auto d = run_infer(model() + " --bench --runs 2 --warmup 0 --json --no-winograd");
  ASSERT_EQ(d.code, 0) << d.out;
  const auto jd = nlohmann::json::parse(d.out.substr(d.out.find('{')));
  EXPECT_EQ(jd["winograd"], false);
  EXPECT_EQ(jd["winograd_layers"], 0);
  EXPECT_EQ(jd["weight_bytes"], j["weight_bytes"]);  // plain weights either way
}

TEST_F(InferCli, BenchTextIsHumanReadable) {
  const auto r = run_infer(model() + " --bench --runs 2 --warmup 0");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* s : {"median", "p90", "images/s", "peak RSS", "arena"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << " missing in " << r.out;
}

// --profile: every step's median time, slowest first, named by node and by what ran it.
TEST_F(InferCli, BenchProfileTimesEveryStep) {
  auto r = run_infer(model() + " --bench --runs 2 --warmup 0 --profile --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  const auto& steps = j["profile"];
  ASSERT_GT(steps.size(), 20u);  // unet-32: 23 convs alone
  int winograd = 0, onednn = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_GE(steps[i]["median_ms"].get<double>(), 0);
    if (i > 0) EXPECT_LE(steps[i]["median_ms"].get<double>(), steps[i - 1]["median_ms"].get<double>());
    winograd += steps[i]["kind"] == "winograd";
    onednn += steps[i]["kind"].get<std::string>().find(':') != std::string::npos;  // e.g. brgconv:avx512_core
  }
  EXPECT_EQ(winograd, j["winograd_layers"].get<int>());
  EXPECT_GT(onednn, 0);
  r = run_infer(model() + " --bench --runs 2 --warmup 0 --profile");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("slowest first"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("enc1.1.0"), std::string::npos) << r.out;
  r = run_infer(model() + " some.png --out x --profile");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--profile, --runs, --warmup and --batch apply to --bench only"), std::string::npos) << r.out;
}

// --batch N: each timed call runs N images (Engine::run_batch); throughput counts images.
TEST_F(InferCli, BenchBatchCountsImagesInThroughput) {
  const auto r = run_infer(model() + " --bench --runs 2 --warmup 0 --batch 3 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(j["batch"].get<int>(), 3);
  EXPECT_NEAR(j["throughput"].get<double>(), 3000.0 / j["median_ms"].get<double>(), 1e-6 * j["throughput"].get<double>());
}

TEST_F(InferCli, ErrorsNameTheFileExitOneAndWriteNothing) {
  test::TempDir dir;
  const std::string image = write_test_image(dir);
  const std::string out = " --out " + dir.file("out");

  // The missing file is the second input: nothing is written for the first one either.
  auto r = run_infer(model() + " " + image + " " + dir.file("missing.png") + out);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("missing.png"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("does not exist"), std::string::npos) << r.out;
  EXPECT_EQ(files_in(dir.path / "out"), 0u);

  r = run_infer(dir.file("missing.lsr") + " " + image + out);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("missing.lsr"), std::string::npos) << r.out;

  std::ofstream(dir.file("garbage.lsr")) << "not a model";
  r = run_infer(dir.file("garbage.lsr") + " " + image + out);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("garbage.lsr"), std::string::npos) << r.out;

  std::ofstream(dir.file("garbage.png")) << "not an image";
  r = run_infer(model() + " " + dir.file("garbage.png") + out);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("garbage.png"), std::string::npos) << r.out;

  r = run_infer(model() + " " + image + "+" + image + out);  // two channel files for a 1-channel model
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("the model takes 1 channel"), std::string::npos) << r.out;

  r = run_infer(model() + " " + image + out + " --precision fp64");
  EXPECT_EQ(r.code, 2) << r.out;  // a usage error
  EXPECT_NE(r.out.find("--precision: fp64 not in {fp32,bf16,int8}"), std::string::npos) << r.out;

  r = run_infer(model() + " " + image + out + " --precision int8");  // exported without calibration
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("calibration"), std::string::npos) << r.out;
  EXPECT_EQ(files_in(dir.path / "out"), 0u);
}

// Files from before checksums existed still run, with a note that they are not verified.
TEST_F(InferCli, FilesWithoutChecksumsRunWithANote) {
  test::TempDir dir;
  const auto file = SafeTensorsFile::open(model());
  auto meta = file.metadata();
  auto j = nlohmann::json::parse(meta.at(kRuntimeMetadataKey));
  ASSERT_TRUE(j.contains("checksums"));
  j.erase("checksums");
  meta[kRuntimeMetadataKey] = j.dump();
  std::vector<TensorToWrite> tensors;
  for (const auto& t : file.tensors()) tensors.push_back({t.name, t.dtype, t.shape, file.data(t), t.nbytes()});
  const std::string old = dir.file("old.lsr");
  write_safetensors(old, tensors, meta);
  auto r = run_infer(old + " --bench --runs 1 --warmup 0");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("leanseg-infer: note: '" + old + "' has no checksums"), std::string::npos) << r.out;
  r = run_infer(model() + " --bench --runs 1 --warmup 0");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("has no checksums"), std::string::npos) << r.out;
}

// Folder runs (issue 17): --skip-errors reports the corrupt image, writes the others and exits 1
// with a summary; without it the run stops at the corrupt image; same-stem inputs are refused
// before anything is written.
TEST_F(InferCli, SkipErrorsAndSameStemInputs) {
  test::TempDir dir;
  fs::create_directories(dir.path / "in");
  fs::create_directories(dir.path / "other");
  write_test_image(dir, "in/a.png");
  write_test_image(dir, "in/c.png");
  write_test_image(dir, "other/c.png");
  std::ofstream(dir.file("in/b.png")) << "not an image";
  auto r = run_infer(model() + " " + dir.file("in") + " --out " + dir.file("skip") + " --skip-errors");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("leanseg-infer: skipped " + dir.file("in/b.png") + ": input image '" + dir.file("in/b.png") +
                       "' cannot be decoded"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("leanseg-infer: error: 1 of 3 images failed"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir.file("skip/a_mask.png")) && fs::exists(dir.file("skip/c_mask.png")));
  EXPECT_EQ(files_in(dir.path / "skip"), 5u);  // a and c: mask and probability; predictions.json
  // predictions.json lists the images that were written, and only those (issue 17).
  const auto written = nlohmann::json::parse(std::ifstream(dir.file("skip/predictions.json")));
  ASSERT_EQ(written.size(), 2u);
  EXPECT_EQ(written[0]["input"][0], dir.file("in/a.png"));
  EXPECT_EQ(written[1]["input"][0], dir.file("in/c.png"));

  r = run_infer(model() + " " + dir.file("in") + " --out " + dir.file("stop"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("leanseg-infer: error: input image '" + dir.file("in/b.png") + "' cannot be decoded"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(files_in(dir.path / "stop"), 2u);  // a only, and no predictions.json: the run stopped

  r = run_infer(model() + " " + dir.file("in/c.png") + " " + dir.file("other/c.png") + " --out " + dir.file("clash"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("inputs '" + dir.file("in/c.png") + "' and '" + dir.file("other/c.png") +
                       "' have the same file stem"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(dir.file("clash")));
  r = run_infer(model() + " --bench --skip-errors");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--skip-errors"), std::string::npos) << r.out;
}

// Hostile input (issue 17): a file whose input is 65536x65536 (what `leanseg export
// --input-size 65536` used to write) crashed `--bench`; the engine refuses it at load.
TEST_F(InferCli, BenchRefusesAFileWithAnInputAboveTheSizeLimit) {
  test::TempDir dir;
  const auto file = SafeTensorsFile::open(model());
  auto meta = file.metadata();
  auto j = nlohmann::json::parse(meta.at(kRuntimeMetadataKey));
  j["graph"]["inputs"][0]["shape"] = {1, 1, 65536, 65536};
  j.erase("checksums");  // a hostile file need not carry them: the size check must hold on its own
  meta[kRuntimeMetadataKey] = j.dump();
  std::vector<TensorToWrite> tensors;
  for (const auto& t : file.tensors()) tensors.push_back({t.name, t.dtype, t.shape, file.data(t), t.nbytes()});
  const std::string big = dir.file("big.lsr");
  write_safetensors(big, tensors, meta);
  const auto r = run_infer(big + " --bench --runs 1 --warmup 0");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("leanseg-infer: error: '" + big +
                       "': input 'image': input size 65536x65536 (HxW) exceeds the limit of 16384 pixels per side\n"),
            std::string::npos)
      << r.out;
}

// The same model file through `leanseg predict` (LibTorch) and, exported, through
// `leanseg-infer`: probabilities agree to PNG rounding in every input mode. "pad" and "tile"
// make the engine re-plan for other sizes (100×80 padded to 128×96; 64×64 tiles).
class InferMatchesPredict : public ::testing::TestWithParam<std::string> {};

TEST_P(InferMatchesPredict, ProbabilitiesAgreeWithLibTorch) {
  test::TempDir dir;
  const std::string image = write_test_image(dir, "disc.png");
  auto model = test::random_model("unet-32");
  Preprocessing pre;
  pre.input_height = pre.input_width = 64;
  pre.mode = GetParam();
  save_model(dir.file("m.safetensors"), model, pre);
  auto r = test::run_cli("export --model " + dir.file("m.safetensors") + " --format runtime --out " + dir.file("m.lsr"), 2);
  ASSERT_EQ(r.code, 0) << r.out;
  r = test::run_cli("predict --model " + dir.file("m.safetensors") + " " + image + " --out " + dir.file("torch"), 2);
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_infer(dir.file("m.lsr") + " " + image + " --out " + dir.file("infer"));
  ASSERT_EQ(r.code, 0) << r.out;

  const cv::Mat p_torch = cv::imread(dir.file("torch/disc_prob.png"), cv::IMREAD_UNCHANGED);
  const cv::Mat p_infer = cv::imread(dir.file("infer/disc_prob.png"), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(p_torch.size(), p_infer.size());
  double lo = 0, hi = 0, max_diff = 0;
  cv::minMaxLoc(p_torch, &lo, &hi);
  EXPECT_GT(hi - lo, 5) << "degenerate probabilities: the comparison would mean nothing";
  cv::Mat diff;
  cv::absdiff(p_torch, p_infer, diff);
  cv::minMaxLoc(diff, nullptr, &max_diff);
  EXPECT_LE(max_diff, 1) << "probability PNGs differ by more than rounding";
  const cv::Mat m_torch = cv::imread(dir.file("torch/disc_mask.png"), cv::IMREAD_UNCHANGED);
  const cv::Mat m_infer = cv::imread(dir.file("infer/disc_mask.png"), cv::IMREAD_UNCHANGED);
  EXPECT_GE(cv::countNonZero(m_torch == m_infer), static_cast<int>(0.995 * m_torch.total()));
}

// Test-time mirroring (--tta hv: 4 passes, flipped back and averaged) means the same in both
// commands, and changes the probabilities of a network that is not mirror-symmetric.
TEST(InferCliMirroring, PredictAndInferMirrorAlike) {
  test::TempDir dir;
  const std::string image = write_test_image(dir, "disc.png");
  Preprocessing pre;
  pre.input_height = pre.input_width = 64;
  pre.mode = "pad";
  save_model(dir.file("m.safetensors"), test::random_model("unet-32"), pre);
  auto r = test::run_cli("export --model " + dir.file("m.safetensors") + " --format runtime --out " + dir.file("m.lsr"), 2);
  ASSERT_EQ(r.code, 0) << r.out;
  r = test::run_cli("predict --model " + dir.file("m.safetensors") + " " + image + " --out " + dir.file("torch") + " --tta hv", 2);
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_infer(dir.file("m.lsr") + " " + image + " --out " + dir.file("infer") + " --tta hv");
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_infer(dir.file("m.lsr") + " " + image + " --out " + dir.file("plain"));
  ASSERT_EQ(r.code, 0) << r.out;
  const cv::Mat torch = cv::imread(dir.file("torch/disc_prob.png"), cv::IMREAD_UNCHANGED);
  const cv::Mat infer = cv::imread(dir.file("infer/disc_prob.png"), cv::IMREAD_UNCHANGED);
  const cv::Mat plain = cv::imread(dir.file("plain/disc_prob.png"), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(torch.size(), infer.size());
  EXPECT_LE(cv::norm(torch, infer, cv::NORM_INF), 1) << "mirrored probabilities differ by more than rounding";
  EXPECT_GE(cv::norm(infer, plain, cv::NORM_INF), 2) << "--tta hv changed nothing";

  r = run_infer(dir.file("m.lsr") + " --bench --tta hv");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--tta and --postprocess apply to segmentation"), std::string::npos) << r.out;
  r = run_infer(dir.file("m.lsr") + " " + image + " --out " + dir.file("x") + " --tta flip");
  EXPECT_EQ(r.code, 2) << r.out;
}

INSTANTIATE_TEST_SUITE_P(InferCli, InferMatchesPredict, ::testing::Values("resize", "pad", "tile"),
                         [](const auto& info) { return info.param; });

// leanseg-infer runs on LLVM's OpenMP runtime by default (src/util/openmp_wait_policy.c: it
// re-executes itself with libomp preloaded; libomp's settings report shows that it initialised,
// with leanseg's spin time of 20 ms and no yielding within the cores), on libgomp when asked (LEANSEG_OPENMP_RUNTIME=libgomp) or when
// the user tunes libgomp (OMP_WAIT_POLICY), and segments identically on both.
TEST_F(InferCli, RunsOnLlvmsOpenMpByDefaultAndOnLibgompWhenAskedWithTheSameResult) {
#ifndef LEANSEG_TEST_HAS_LIBOMP
  GTEST_SKIP() << "leanseg-infer was built without LLVM's libomp (Debian: libomp5-14)";
#else
  test::TempDir dir;
  const std::string image = write_test_image(dir);
  const std::string infer = std::string(LEANSEG_INFER_PATH) + " --threads 2 " + model() + " " + image;
  const auto llvm = run_command("KMP_SETTINGS=1 " + infer + " --out " + dir.file("llvm"));
  ASSERT_EQ(llvm.code, 0) << llvm.out;
  EXPECT_NE(llvm.out.find("KMP_BLOCKTIME=20\n"), std::string::npos) << "libomp did not initialise:\n" << llvm.out;
  EXPECT_NE(llvm.out.find("KMP_USE_YIELD=2\n"), std::string::npos) << "spinning threads yield:\n" << llvm.out;
  const auto gomp = run_command("LEANSEG_OPENMP_RUNTIME=libgomp KMP_SETTINGS=1 " + infer + " --out " + dir.file("gomp"));
  ASSERT_EQ(gomp.code, 0) << gomp.out;
  EXPECT_EQ(gomp.out.find("KMP_BLOCKTIME"), std::string::npos) << "libomp although libgomp was asked for:\n" << gomp.out;
  const auto tuned = run_command("OMP_WAIT_POLICY=active KMP_SETTINGS=1 " + infer + " --out " + dir.file("tuned"));
  ASSERT_EQ(tuned.code, 0) << tuned.out;
  EXPECT_EQ(tuned.out.find("KMP_BLOCKTIME"), std::string::npos) << "libomp although libgomp was tuned:\n" << tuned.out;
  const cv::Mat a = cv::imread(dir.file("gomp/grey_prob.png"), cv::IMREAD_UNCHANGED);
  const cv::Mat b = cv::imread(dir.file("llvm/grey_prob.png"), cv::IMREAD_UNCHANGED);
  ASSERT_FALSE(a.empty() || b.empty());
  EXPECT_EQ(cv::countNonZero(a != b), 0) << "probabilities differ between the OpenMP runtimes";
#endif
}

}  // namespace
}  // namespace leanseg
