// Sharded prediction (src/data/shard.cpp): `--shard I/N` splits by file name, `--skip-existing`
// resumes, `leanseg merge-shards` checks completeness; `leanseg predict` and `leanseg-infer`.
#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "data/shard.h"
#include "leanseg/error.h"
#include "leanseg/model_file.h"
#include "model_test_util.h"

namespace leanseg {
namespace {
namespace fs = std::filesystem;

TEST(Shard, SpecIsParsedAndCheckedNamingTheOption) {
  const ShardSpec s = parse_shard("3/8");
  EXPECT_EQ(s.index, 3u);
  EXPECT_EQ(s.count, 8u);
  EXPECT_FALSE(parse_shard("0/1").sharded());
  for (const char* bad : {"8/8", "1/0", "a/2", "-1/2", "1/2/3", "12", "/4", "1/"})
    EXPECT_ERROR_CONTAINS(parse_shard(bad), std::string("--shard '") + bad + "': expected I/N");
}

TEST(Shard, AssignmentDependsOnTheFileNameOnly) {
  std::map<size_t, int> per_shard;
  for (int i = 0; i < 400; ++i) {
    const std::string name = "frame_" + std::to_string(i) + ".png";
    const size_t s = shard_of("/data/a/" + name, 4);
    EXPECT_EQ(s, shard_of("/mnt/other/" + name, 4)) << "the folder does not matter";
    EXPECT_LT(s, 4u);
    ++per_shard[s];
  }
  ASSERT_EQ(per_shard.size(), 4u);
  for (const auto& [s, n] : per_shard) EXPECT_GT(n, 60) << "shard " << s << " of 400 names: the hash spreads them";
  EXPECT_EQ(shard_of("x.png", 1), 0u);
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// Nine small disc images and a random unet-32 model file (and its runtime export).
class ShardedPrediction : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    fs::create_directories(dir_->file("images"));
    cv::RNG rng(5);
    for (int i = 0; i < 9; ++i) {
      cv::Mat image(48, 40, CV_8UC1, cv::Scalar(20));
      cv::circle(image, {rng.uniform(10, 30), rng.uniform(10, 38)}, rng.uniform(5, 12), cv::Scalar(220), cv::FILLED);
      cv::imwrite(dir_->file("images/img" + std::to_string(i) + ".png"), image);
    }
    Preprocessing pre;
    pre.input_height = pre.input_width = 64;
    pre.mode = "pad";
    save_model(dir_->file("m.safetensors"), test::random_model("unet-32"), pre);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string predict(const std::string& out, const std::string& extra) {
    return "predict --model " + dir_->file("m.safetensors") + " " + dir_->file("images") + " --out " + out + " " + extra;
  }
  static std::map<std::string, int> foreground_by_input(const nlohmann::json& predictions) {
    std::map<std::string, int> m;
    for (const auto& p : predictions) m[p["input"][0].get<std::string>()] = p["foreground_pixels"].get<int>();
    return m;
  }
  static test::TempDir* dir_;
};
test::TempDir* ShardedPrediction::dir_ = nullptr;

TEST_F(ShardedPrediction, ShardsCoverTheFolderOnceAndMergeChecksCompleteness) {
  auto r = test::run_cli(predict(dir_->file("all"), ""), 2);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto whole = foreground_by_input(read_json(dir_->file("all/predictions.json")));
  ASSERT_EQ(whole.size(), 9u);

  const std::string out = dir_->file("sharded");
  for (const char* shard : {"0/3", "2/3"}) {
    r = test::run_cli(predict(out, std::string("--shard ") + shard), 2);
    ASSERT_EQ(r.code, 0) << r.out;
  }
  EXPECT_FALSE(fs::exists(out + "/predictions.json")) << "shards write their manifests only";
  r = test::run_cli("merge-shards --shards 3 --out " + out + " " + dir_->file("images"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("shard 1/3: no manifest " + out + "/shard-1-of-3.json"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("in no shard (shard 1/3)"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out + "/predictions.json"));

  r = test::run_cli(predict(out, "--shard 1/3"), 2);
  ASSERT_EQ(r.code, 0) << r.out;
  size_t assigned = 0;
  for (int i = 0; i < 3; ++i) {
    const auto m = read_json(out + "/shard-" + std::to_string(i) + "-of-3.json");
    EXPECT_TRUE(m["complete"].get<bool>());
    for (const auto& p : m["predictions"]) EXPECT_EQ(shard_of(p["input"][0].get<std::string>(), 3), static_cast<size_t>(i));
    assigned += m["assigned"].get<size_t>();
  }
  EXPECT_EQ(assigned, 9u) << "every image in exactly one shard";
  r = test::run_cli("merge-shards --shards 3 --out " + out + " " + dir_->file("images"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(foreground_by_input(read_json(out + "/predictions.json")), whole) << "the same results as one job";
  r = test::run_cli("merge-shards --shards 4 --out " + out);
  EXPECT_EQ(r.code, 1) << "manifests of another N do not count";
}

TEST_F(ShardedPrediction, SkipExistingResumesWithoutRedoingFinishedImages) {
  const std::string out = dir_->file("resume");
  auto r = test::run_cli(predict(out, "--shard 0/2"), 2);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto first = read_json(out + "/shard-0-of-2.json");
  const size_t assigned = first["assigned"].get<size_t>();
  ASSERT_GE(assigned, 2u);
  // A job "killed" before its last image: that image's record is missing (its PNGs may exist).
  const std::string redo = first["predictions"][0]["input"][0].get<std::string>();
  fs::remove(out + "/" + fs::path(redo).stem().string() + "_prediction.json");
  const std::string kept_mask = first["predictions"][1]["mask"].get<std::string>();
  const auto kept_time = fs::last_write_time(kept_mask);
  r = test::run_cli(predict(out, "--shard 0/2 --skip-existing"), 2);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto second = read_json(out + "/shard-0-of-2.json");
  EXPECT_EQ(second["written"].get<size_t>(), 1u);
  EXPECT_EQ(second["skipped_existing"].get<size_t>(), assigned - 1);
  EXPECT_EQ(fs::last_write_time(kept_mask), kept_time) << "a finished image is not written again";
  EXPECT_EQ(foreground_by_input(second["predictions"]), foreground_by_input(first["predictions"]));
}

TEST_F(ShardedPrediction, LeansegInferShardsMergeToo) {
  auto r = test::run_cli("export --model " + dir_->file("m.safetensors") + " --format runtime --out " + dir_->file("m.lsr"), 2);
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string out = dir_->file("infer");
  for (const char* shard : {"0/2", "1/2"}) {
    r = test::run_command(std::string(LEANSEG_INFER_PATH) + " " + dir_->file("m.lsr") + " " + dir_->file("images") +
                          " --threads 2 --out " + out + " --shard " + shard);
    ASSERT_EQ(r.code, 0) << r.out;
  }
  r = test::run_cli("merge-shards --shards 2 --out " + out + " " + dir_->file("images"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(read_json(out + "/predictions.json").size(), 9u);
}

}  // namespace
}  // namespace leanseg
