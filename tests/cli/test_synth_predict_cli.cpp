// Issue 20, items 5 and 4 on the command line: `leanseg synth` writes datasets the readers take;
// `predict` runs .lsr files on the LibTorch-free engine and writes 16-bit label TIFFs and GeoJSON;
// `leanseg-infer --pixel-size` reports HC in mm; `compress --quant seedB` applies the seed's
// uniform formula.
#include <fstream>
#include <opencv2/imgcodecs.hpp>

#include "leanseg/compress.h"
#include "leanseg/fs.h"
#include "leanseg/mask_geometry.h"
#include "leanseg/model_file.h"
#include "model_test_util.h"

namespace leanseg {
namespace {

using test::CliRun;
CliRun run_cli(const std::string& args) { return test::run_cli(args, 2); }

nlohmann::json read_json(const std::string& path) {
  const auto bytes = read_file_bytes(path);
  return nlohmann::json::parse(bytes.begin(), bytes.end());
}

TEST(Cli, SynthWritesDatasetsTheReadersTake) {
  test::TempDir dir;
  CliRun r = run_cli("synth worms --out " + dir.file("worms") + " -n 3 --size 48x64 --seed 2");
  ASSERT_EQ(r.code, 0) << r.out;
  const Dataset worms = read_dataset(dir.file("worms"));
  EXPECT_EQ(worms.kind, "folder");
  ASSERT_EQ(worms.samples.size(), 3u);
  EXPECT_EQ(worms.samples[0].image.size(), cv::Size(64, 48));
  // The same generator, seed and index: the same mask as in memory.
  EXPECT_EQ(cv::countNonZero(worms.samples[2].mask != make_synthetic_worms(3, 48, 64, 2).samples[2].mask), 0);
  r = run_cli("synth ultrasound --out " + dir.file("us") + " -n 2 --size 64");
  ASSERT_EQ(r.code, 0) << r.out;
  const Dataset us = read_dataset(dir.file("us"));
  EXPECT_EQ(us.kind, "hc18");
  EXPECT_GT(us.samples[1].hc_mm, 0);
  r = run_cli("synth worms --out " + dir.file("worms") + " -n 1");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("output folder '" + dir.file("worms") + "' exists and is not empty"), std::string::npos) << r.out;
  r = run_cli("synth worms --out " + dir.file("x") + " -n 1 --size 20x20");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--size: expected HxW"), std::string::npos) << r.out;
}

// A .lsr model in `predict` (the engine) gives the masks the model file gives (LibTorch), in
// every --format; leanseg-infer's HC in mm is its HC in pixels times --pixel-size, as predict's.
// A model that records an outline offset (trained on HC18's drawn outlines) reports HC on the
// line's middle in `predict` and `leanseg-infer` alike: its mask's fitted perimeter less 2π·offset.
TEST(Cli, PredictAndInferMeasureHcWhereTheModelFileSays) {
  test::TempDir dir;
  ASSERT_EQ(run_cli("synth ultrasound --out " + dir.file("us") + " -n 3 --size 64x80").code, 0);
  const std::string images = dir.file("us/training_set");
  test::save_tiny_model(dir.file("plain.safetensors"));
  LoadedModel m = load_model(dir.file("plain.safetensors"));
  m.preprocessing.hc_outline_offset_px = 0.05;  // the random model's blobs are small: keep their HC above 0
  save_model(dir.file("m.safetensors"), m.model, m.preprocessing);
  ASSERT_EQ(run_cli("export --model " + dir.file("m.safetensors") + " --format runtime --out " + dir.file("m.lsr")).code, 0);
  CliRun r = run_cli("predict --model " + dir.file("m.safetensors") + " " + images + " --out " + dir.file("pt"));
  ASSERT_EQ(r.code, 0) << r.out;
  r = test::run_command(std::string(LEANSEG_INFER_PATH) + " " + dir.file("m.lsr") + " " + images + " --out " +
                        dir.file("infer") + " --no-winograd --threads 2");
  ASSERT_EQ(r.code, 0) << r.out;
  int with_hc = 0;
  for (const char* out : {"pt", "infer"}) {
    const nlohmann::json j = read_json(dir.file(std::string(out) + "/predictions.json"));
    for (size_t i = 0; i < j.size(); ++i) {
      if (!j[i].contains("hc_px")) continue;
      ++with_hc;
      const std::string mask = dir.file(std::string(out) + "/00" + std::to_string(i) + "_HC_mask.png");
      const EllipseFit fit = fit_ellipse(cv::imread(mask, cv::IMREAD_UNCHANGED));
      ASSERT_GT(fit.circumference_px, 2 * M_PI * 0.05) << mask;
      EXPECT_NEAR(j[i]["hc_px"].get<double>(), fit.circumference_px - 2 * M_PI * 0.05, 1e-9) << mask;
    }
  }
  ASSERT_GT(with_hc, 1) << "no mask with an ellipse: the HC checks would be empty";
}

TEST(Cli, PredictRunsLsrFilesAndWritesLabelTiffsAndGeoJson) {
  test::TempDir dir;
  ASSERT_EQ(run_cli("synth ultrasound --out " + dir.file("us") + " -n 3 --size 64x80").code, 0);
  const std::string images = dir.file("us/training_set");
  test::save_tiny_model(dir.file("m.safetensors"));
  CliRun r = run_cli("export --model " + dir.file("m.safetensors") + " --format runtime --out " + dir.file("m.lsr"));
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_cli("predict --model " + dir.file("m.lsr") + " " + images + " --out " + dir.file("lsr") +
              " --format png,tiff16,geojson --pixel-size 0.25 --no-winograd");
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_cli("predict --model " + dir.file("m.safetensors") + " " + images + " --out " + dir.file("pt") + " --pixel-size 0.25");
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json lsr = read_json(dir.file("lsr/predictions.json")), pt = read_json(dir.file("pt/predictions.json"));
  ASSERT_EQ(lsr.size(), 3u);
  int with_hc = 0;
  for (size_t i = 0; i < lsr.size(); ++i) {
    const std::string stem = "00" + std::to_string(i) + "_HC";
    const cv::Mat a = cv::imread(dir.file("lsr/" + stem + "_mask.png"), cv::IMREAD_UNCHANGED);
    const cv::Mat b = cv::imread(dir.file("pt/" + stem + "_mask.png"), cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(a.empty() || b.empty()) << stem;
    EXPECT_LE(cv::countNonZero(a != b), static_cast<int>(a.total() / 1000)) << stem;  // float rounding at the threshold
    const cv::Mat labels = cv::imread(dir.file("lsr/" + stem + "_labels.tif"), cv::IMREAD_UNCHANGED);
    ASSERT_EQ(labels.type(), CV_16UC1) << stem;
    EXPECT_EQ(cv::countNonZero((labels != 0) != (a != 0)), 0) << stem;
    double objects = 0;
    cv::minMaxLoc(labels, nullptr, &objects);
    EXPECT_EQ(lsr[i]["objects"], static_cast<int>(objects));
    const nlohmann::json g = read_json(dir.file("lsr/" + stem + ".geojson"));
    EXPECT_EQ(g["type"], "FeatureCollection");
    EXPECT_EQ(g["features"].size(), static_cast<size_t>(objects)) << stem;  // no holes in objects of random masks
    if (lsr[i].contains("hc_px")) {
      ++with_hc;
      EXPECT_DOUBLE_EQ(lsr[i]["hc_mm"].get<double>(), lsr[i]["hc_px"].get<double>() * 0.25);
    }
  }
  ASSERT_GT(with_hc, 0) << "no mask with an ellipse: the HC checks would be empty";
  // leanseg-infer on the same engine settings: the same HC.
  r = test::run_command(std::string(LEANSEG_INFER_PATH) + " " + dir.file("m.lsr") + " " + images + " --out " +
                        dir.file("infer") + " --pixel-size 0.25 --no-winograd --threads 2");
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json inf = read_json(dir.file("infer/predictions.json"));
  ASSERT_EQ(inf.size(), lsr.size());
  for (size_t i = 0; i < inf.size(); ++i) {
    ASSERT_EQ(inf[i].contains("hc_mm"), lsr[i].contains("hc_mm")) << i;
    if (!inf[i].contains("hc_mm")) continue;
    EXPECT_DOUBLE_EQ(inf[i]["hc_mm"].get<double>(), inf[i]["hc_px"].get<double>() * 0.25);
    EXPECT_DOUBLE_EQ(inf[i]["hc_mm"].get<double>(), lsr[i]["hc_mm"].get<double>());
  }
  EXPECT_NE(r.out.find(" mm, "), std::string::npos) << r.out;
  r = test::run_command(std::string(LEANSEG_INFER_PATH) + " " + dir.file("m.lsr") + " --bench --pixel-size 0.2");
  EXPECT_EQ(r.code, 2) << r.out;
  // Only the engine has precisions; only PNG has overlays.
  r = run_cli("predict --model " + dir.file("m.safetensors") + " " + images + " --out " + dir.file("x") + " --precision bf16");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("need an exported .lsr model"), std::string::npos) << r.out;
  r = run_cli("predict --model " + dir.file("m.lsr") + " " + images + " --out " + dir.file("x") + " --format geojson --overlay");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--overlay writes a PNG"), std::string::npos) << r.out;
}

TEST(Cli, CompressSeedUniformQuantizerSnapsWeightsToItsGrid) {
  test::TempDir dir;
  test::save_tiny_model(dir.file("m.safetensors"));
  CliRun r = run_cli("compress --model " + dir.file("m.safetensors") + " --out " + dir.file("s.safetensors") + " --quant seed4 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(j["steps"][0]["method"], "seed-uniform");
  EXPECT_EQ(j["steps"][0]["bits"], 4);
  const LoadedModel before = load_model(dir.file("m.safetensors")), after = load_model(dir.file("s.safetensors"));
  const auto w0 = compressible_weights(*before.model), w1 = compressible_weights(*after.model);
  ASSERT_EQ(w0.size(), w1.size());
  int64_t zeros = 0;
  for (size_t i = 0; i < w0.size(); ++i) {
    const auto grid = w1[i].second * 15;  // X_q = round(15 X) / 15
    EXPECT_LT((grid - grid.round()).abs().max().item<double>(), 1e-4) << w1[i].first;
    EXPECT_LE((w1[i].second - w0[i].second).abs().max().item<double>(), 0.5 / 15 + 1e-6) << w1[i].first;
    EXPECT_TRUE(torch::equal(w1[i].second, seed_uniform_quantize(w0[i].second, 4))) << w1[i].first;
    zeros += (w1[i].second == 0).sum().item<int64_t>();
  }
  EXPECT_EQ(j["steps"][0]["zero_after"], zeros);
  r = run_cli("info --model " + dir.file("s.safetensors"));
  EXPECT_NE(r.out.find("seed4 (seed-uniform)"), std::string::npos) << r.out;
  r = run_cli("compress --model " + dir.file("m.safetensors") + " --out " + dir.file("x.safetensors") + " --quant seed3");
  EXPECT_EQ(r.code, 2);  // a value --quant does not take: a usage error
  EXPECT_NE(r.out.find("--quant seed3: unknown bit-width 3 (8, 4, 2)"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace leanseg
