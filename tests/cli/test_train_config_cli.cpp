// `leanseg train --config`: a YAML recipe runs, the run's resolved RUN/config.json runs the same
// run again (the same config, bit-identical weights), flags override the file, and a wrong file
// stops before anything is written.
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "leanseg/fs.h"
#include "leanseg/model_file.h"
#include "leanseg/tensor_io.h"
#include "leanseg/train.h"
#include "model_test_util.h"

namespace leanseg {
namespace {

using test::CliRun;
CliRun run_cli(const std::string& args) { return test::run_cli(args, 2); }

// DIR/data/images and DIR/data/masks: four 64x80 images with a bright disc each.
void write_disc_folder(const test::TempDir& dir) {
  std::filesystem::create_directories(dir.path / "data/images");
  std::filesystem::create_directories(dir.path / "data/masks");
  for (int i = 0; i < 4; ++i) {
    cv::Mat img(64, 80, CV_8UC1, cv::Scalar(30)), mask(64, 80, CV_8UC1, cv::Scalar(0));
    cv::circle(img, {30 + 5 * i, 32}, 12 + 2 * i, cv::Scalar(220), cv::FILLED);
    cv::circle(mask, {30 + 5 * i, 32}, 12 + 2 * i, cv::Scalar(255), cv::FILLED);
    cv::imwrite(dir.file("data/images/im" + std::to_string(i) + ".png"), img);
    cv::imwrite(dir.file("data/masks/im" + std::to_string(i) + ".png"), mask);
  }
}

nlohmann::json read_json(const std::string& path) {
  const auto bytes = read_file_bytes(path);
  return nlohmann::json::parse(bytes.begin(), bytes.end());
}

void expect_same_weights(const std::string& a_path, const std::string& b_path) {
  const auto a = load_model(a_path), b = load_model(b_path);
  const auto sa = state_dict(*a.model), sb = state_dict(*b.model);
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) EXPECT_TRUE(torch::equal(sa[i].second, sb[i].second)) << sa[i].first;
}

TEST(Cli, TrainConfigRoundTripReproducesTheRunBitForBit) {
  test::TempDir dir;
  write_disc_folder(dir);
  std::ofstream(dir.file("run.yaml")) << R"(data: {dir: data}      # relative to this file
model: efficient-unet
model_options: {channels: [8, 8, 16, 16, 32, 32], reduction: 2, attention_heads: 2}
input_size: 64
batch_size: 2
epochs: 2
lr: 3e-3
weight_decay: 0.001
betas: [0.8, 0.99]
dice_weight: 0.6
bce_weight: 0.4
early_stop_patience: 5
)";
  CliRun r = run_cli("train --config " + dir.file("run.yaml") + " --out " + dir.file("run1") + " --no-progress");
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json c1 = read_json(dir.file("run1/config.json"));
  EXPECT_EQ(c1["data"]["dir"], dir.file("data"));
  EXPECT_EQ(c1["weight_decay"], 0.001);
  EXPECT_EQ(c1["betas"], nlohmann::json({0.8, 0.99}));
  EXPECT_EQ(c1["dice_weight"], 0.6);
  EXPECT_EQ(c1["epochs"], 2);
  EXPECT_EQ(c1["model_options"]["channels"], nlohmann::json({8, 8, 16, 16, 32, 32}));
  EXPECT_EQ(c1["plateau_patience"], 4);  // not in the file: the default preset's (hc18-cpu)

  r = run_cli("train --config " + dir.file("run1/config.json") + " --out " + dir.file("run2") + " --no-progress");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(read_file_bytes(dir.file("run2/config.json")), read_file_bytes(dir.file("run1/config.json")));
  expect_same_weights(dir.file("run1/last.safetensors"), dir.file("run2/last.safetensors"));
  expect_same_weights(dir.file("run1/best.safetensors"), dir.file("run2/best.safetensors"));

  // Flags override the file; what they do not name stays the file's.
  r = run_cli("train --config " + dir.file("run1/config.json") + " --out " + dir.file("run3") +
              " --no-progress --epochs 1 --lr 0.01 --plateau-factor 0.2 --min-lr 1e-5 --eps 1e-4 --bce-weight 0 --crops-per-image 3");
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json c3 = read_json(dir.file("run3/config.json"));
  for (const char* k : {"epochs", "lr", "plateau_factor", "min_lr", "eps", "bce_weight", "crops_per_image"}) EXPECT_NE(c3[k], c1[k]) << k;
  EXPECT_EQ(c3["lr"], 0.01);
  EXPECT_EQ(c3["bce_weight"], 0.0);
  EXPECT_EQ(c3["crops_per_image"], 3);
  nlohmann::json rest = c3;
  for (const char* k : {"epochs", "lr", "plateau_factor", "min_lr", "eps", "bce_weight", "crops_per_image"}) rest[k] = c1[k];
  EXPECT_EQ(rest, c1);
}

TEST(Cli, TrainFolderPresetAndBadConfigFiles) {
  test::TempDir dir;
  write_disc_folder(dir);
  CliRun r = run_cli("train --preset folder --data " + dir.file("data") + " --out " + dir.file("run") +
                     " --no-progress --epochs 1 --input-size 64 --batch-size 2");
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json c = read_json(dir.file("run/config.json"));
  EXPECT_EQ(c["model"], "efficient-unet");
  EXPECT_EQ(c["data"]["dataset"], "folder");
  EXPECT_EQ(c["pos_weight"], "auto");

  std::ofstream(dir.file("bad.yaml")) << "data: {dir: data}\nepochs: 1\nlearning_rate: 0.1\n";
  r = run_cli("train --config " + dir.file("bad.yaml") + " --out " + dir.file("bad"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("config file '" + dir.file("bad.yaml") + "': key 'learning_rate': unknown key"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad")));
  std::ofstream(dir.file("preset.json")) << R"({"preset": "fastest"})";
  r = run_cli("train --config " + dir.file("preset.json") + " --out " + dir.file("bad"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("config file '" + dir.file("preset.json") + "': key 'preset': unknown preset 'fastest'"), std::string::npos)
      << r.out;
}

// The precision: the preset's (hc18-cpu, the default: bf16 where the CPU has AVX512-BF16) unless
// --bf16 or --fp32 says otherwise; recorded in the run's config.json only when on.
TEST(Cli, TrainPrecisionIsThePresetsUnlessAFlagSaysOtherwise) {
  test::TempDir dir;
  write_disc_folder(dir);
  auto bf16_of = [&](const std::string& run, const std::string& flag) {
    const CliRun r = run_cli("train --data " + dir.file("data") + " --out " + dir.file(run) + " --model efficient-unet"
                             " --model-options '{\"channels\": [8, 8, 16, 16, 32, 32]}' --input-size 32 --epochs 1"
                             " --no-progress " + flag);
    EXPECT_EQ(r.code, 0) << r.out;
    return read_json(dir.file(run + "/config.json")).value("bf16", false);
  };
  EXPECT_EQ(bf16_of("preset", ""), bf16_trains_fast_on_this_cpu());
  EXPECT_FALSE(bf16_of("fp32", "--fp32"));
  EXPECT_TRUE(bf16_of("bf16", "--bf16"));
}

// --freeze-encoder-bn trains the encoder's weights with its BatchNorm statistics kept (recorded in
// the model options); it cannot be combined with --freeze-encoder.
TEST(Cli, TrainFreezeEncoderBnSetsTheModelOptions) {
  test::TempDir dir;
  write_disc_folder(dir);
  const std::string base = "train --data " + dir.file("data") + " --model mobilenet-aspp-se-unet-lite --input-size 32"
                           " --epochs 1 --no-progress --out ";
  CliRun r = run_cli(base + dir.file("run") + " --freeze-encoder-bn");
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json options = read_json(dir.file("run/config.json"))["model_options"];
  EXPECT_EQ(options["encoder_frozen"], false);
  EXPECT_EQ(options["encoder_bn_frozen"], true);
  r = run_cli(base + dir.file("both") + " --freeze-encoder-bn --freeze-encoder");
  EXPECT_EQ(r.code, 2) << r.out;  // a usage error
  EXPECT_NE(r.out.find("--freeze-encoder"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("both")));
}

}  // namespace
}  // namespace leanseg
