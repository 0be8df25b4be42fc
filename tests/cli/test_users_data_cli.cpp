// Issue 20 on the command line, the second round: class-labelled 16-bit TIFFs of K-class models,
// letterbox models through predict, export and leanseg-infer, and the page/channel choice of
// multi-channel TIFFs in predict and leanseg-infer.
#include <tiffio.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "leanseg/fs.h"
#include "leanseg/model_file.h"
#include "leanseg/runtime_file.h"
#include "model_test_util.h"

namespace leanseg {
namespace {

using test::CliRun;
CliRun run_cli(const std::string& args) { return test::run_cli(args, 2); }

cv::Mat disc_image(int rows, int cols) {
  cv::Mat img(rows, cols, CV_8UC1, cv::Scalar(30));
  cv::circle(img, {cols / 2, rows / 2}, std::min(rows, cols) / 3, cv::Scalar(220), cv::FILLED);
  return img;
}

TEST(Cli, PredictWritesClassIndexTiffsForKClassModels) {
  test::TempDir dir;
  test::save_tiny_model(dir.file("m3.safetensors"), 3);
  cv::imwrite(dir.file("a.png"), disc_image(48, 80));
  CliRun r = run_cli("predict --model " + dir.file("m3.safetensors") + " " + dir.file("a.png") + " --out " +
                     dir.file("out") + " --format png,tiff16");
  ASSERT_EQ(r.code, 0) << r.out;
  const cv::Mat png = cv::imread(dir.file("out/a_labels.png"), cv::IMREAD_UNCHANGED);
  const cv::Mat tif = cv::imread(dir.file("out/a_labels.tif"), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(tif.type(), CV_16UC1);
  ASSERT_EQ(tif.size(), cv::Size(80, 48));
  cv::Mat png16;
  png.convertTo(png16, CV_16U);
  EXPECT_EQ(cv::countNonZero(tif != png16), 0) << "the TIFF's labels are the class indices of the PNG label map";
  double highest = 0;
  cv::minMaxLoc(tif, nullptr, &highest);
  EXPECT_LE(highest, 2);
  r = run_cli("predict --model " + dir.file("m3.safetensors") + " " + dir.file("a.png") + " --out " + dir.file("g") +
              " --format geojson");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("--format geojson writes object outlines of binary masks; a 3-class model writes label maps"),
            std::string::npos)
      << r.out;
}

// A letterbox model: predict (LibTorch) and leanseg-infer (the engine, after export) give masks of
// the image's own size that agree, and the exported file keeps the key.
TEST(Cli, LetterboxModelsKeepTheirResizingThroughExportAndInference) {
  test::TempDir dir;
  test::save_tiny_model(dir.file("box.safetensors"), 2, "letterbox");
  cv::imwrite(dir.file("tall.png"), disc_image(90, 40));
  CliRun r = run_cli("predict --model " + dir.file("box.safetensors") + " " + dir.file("tall.png") + " --out " + dir.file("pt"));
  ASSERT_EQ(r.code, 0) << r.out;
  r = run_cli("export --model " + dir.file("box.safetensors") + " --format runtime --out " + dir.file("box.lsr"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(read_runtime_model(dir.file("box.lsr")).preprocessing.at("resize"), "letterbox");
  r = test::run_command(std::string(LEANSEG_INFER_PATH) + " --threads 2 --no-winograd " + dir.file("box.lsr") + " " +
                        dir.file("tall.png") + " --out " + dir.file("rt"));
  ASSERT_EQ(r.code, 0) << r.out;
  const cv::Mat pt = cv::imread(dir.file("pt/tall_mask.png"), cv::IMREAD_UNCHANGED);
  const cv::Mat rt = cv::imread(dir.file("rt/tall_mask.png"), cv::IMREAD_UNCHANGED);
  ASSERT_EQ(pt.size(), cv::Size(40, 90));
  ASSERT_EQ(rt.size(), cv::Size(40, 90));
  EXPECT_LE(cv::countNonZero(pt != rt), static_cast<int>(pt.total() / 100));
}

// A 3-channel (non-colour) 16-bit TIFF: refused naming the file and --channel until one is chosen,
// in predict and in leanseg-infer alike.
TEST(Cli, MultiChannelTiffsNeedTheChannelOption) {
  test::TempDir dir;
  test::save_tiny_model(dir.file("m.safetensors"), 2);
  CliRun r = run_cli("export --model " + dir.file("m.safetensors") + " --format runtime --out " + dir.file("m.lsr"));
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string tif = dir.file("c3.tif");
  {
    TIFF* t = TIFFOpen(tif.c_str(), "w");
    ASSERT_NE(t, nullptr);
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, 32);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, 24);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 16);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 3);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    std::vector<uint16_t> row(32 * 3, 1000);
    for (uint32_t y = 0; y < 24; ++y) ASSERT_EQ(TIFFWriteScanline(t, row.data(), y, 0), 1);
    TIFFClose(t);
  }
  r = run_cli("predict --model " + dir.file("m.safetensors") + " " + tif + " --out " + dir.file("a"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("input image '" + tif + "' has 3 channels; choose one with --channel 0..2"), std::string::npos) << r.out;
  r = run_cli("predict --model " + dir.file("m.safetensors") + " " + tif + " --channel 2 --out " + dir.file("a"));
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(cv::imread(dir.file("a/c3_mask.png"), cv::IMREAD_UNCHANGED).size(), cv::Size(32, 24));
  r = test::run_command(std::string(LEANSEG_INFER_PATH) + " " + dir.file("m.lsr") + " " + tif + " --out " + dir.file("b"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("has 3 channels; choose one with --channel 0..2"), std::string::npos) << r.out;
  r = test::run_command(std::string(LEANSEG_INFER_PATH) + " " + dir.file("m.lsr") + " " + tif + " --channel 1 --out " +
                        dir.file("b"));
  EXPECT_EQ(r.code, 0) << r.out;
  r = run_cli("predict --model " + dir.file("m.safetensors") + " " + tif + " --channel 1 --page 1 --out " + dir.file("c"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("has 1 page; --page 1 is out of range (0..0)"), std::string::npos) << r.out;
}

// `train --resize letterbox --intensity-range LO,HI` on float TIFFs: both reach the model file's
// preprocessing (so eval, predict and leanseg-infer repeat them), and predict on a non-square
// float image gives a mask of the image's own size.
TEST(Cli, TrainRecordsLetterboxAndTheIntensityRangeInTheModel) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.path / "data/images");
  std::filesystem::create_directories(dir.path / "data/masks");
  for (int i = 0; i < 4; ++i) {
    cv::Mat image(48, 80, CV_32FC1, cv::Scalar(200.0f)), mask(48, 80, CV_8UC1, cv::Scalar(0));
    cv::circle(image, {40, 24}, 10 + 2 * i, cv::Scalar(1800.0f), cv::FILLED);
    cv::circle(mask, {40, 24}, 10 + 2 * i, cv::Scalar(255), cv::FILLED);
    ASSERT_TRUE(cv::imwrite(dir.file("data/images/f" + std::to_string(i) + ".tif"), image));
    cv::imwrite(dir.file("data/masks/f" + std::to_string(i) + ".png"), mask);
  }
  CliRun r = run_cli("train --data " + dir.file("data") + " -o " + dir.file("run") +
                     " --model efficient-unet --input-size 64 --epochs 1 --no-progress --resize letterbox"
                     " --intensity-range 0,2000");
  ASSERT_EQ(r.code, 0) << r.out;
  const LoadedModel m = load_model(dir.file("run/last.safetensors"));
  EXPECT_EQ(m.preprocessing.resize, "letterbox");
  EXPECT_EQ(m.preprocessing.intensity_range, (std::vector<double>{0, 2000}));
  r = run_cli("predict --model " + dir.file("run/last.safetensors") + " " + dir.file("data/images/f0.tif") + " -o " +
              dir.file("pred"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(cv::imread(dir.file("pred/f0_mask.png"), cv::IMREAD_UNCHANGED).size(), cv::Size(80, 48));
}

}  // namespace
}  // namespace leanseg
