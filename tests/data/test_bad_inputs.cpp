// Each broken input must fail with a leanseg::Error that names the file and the problem.
#include <filesystem>

#include "data_fixtures.h"
#include "leanseg/data.h"
#include "leanseg/error.h"

namespace leanseg {
namespace {
using namespace test;
namespace fs = std::filesystem;

struct FakeHc18 : ::testing::Test {
  TempDir dir;
  std::string root = dir.path.string();
  void SetUp() override { make_fake_hc18(root, three_fake_heads()); }
  std::string file(const std::string& name) const { return root + "/training_set/" + name; }
  void set_csv(const std::string& text) const { write_text(root + "/training_set_pixel_size_and_HC.csv", text); }
};

TEST_F(FakeHc18, ReadsWhenNothingIsBroken) { EXPECT_EQ(read_hc18(root).samples.size(), 3u); }

TEST_F(FakeHc18, MissingAnnotation) {
  fs::remove(file("002_HC_Annotation.png"));
  EXPECT_ERROR_CONTAINS(read_hc18(root), "002_HC_Annotation.png' is missing");
}

TEST_F(FakeHc18, AnnotationSizeDiffersFromImage) {
  cv::imwrite(file("001_2HC_Annotation.png"), cv::Mat::zeros(90, 121, CV_8UC1) + 255);
  EXPECT_ERROR_CONTAINS(read_hc18(root), "001_2HC_Annotation.png' is 121x90 but its image is 120x90");
}

TEST_F(FakeHc18, EmptyAnnotation) {
  cv::imwrite(file("002_HC_Annotation.png"), cv::Mat::zeros(80, 100, CV_8UC1));
  EXPECT_ERROR_CONTAINS(read_hc18(root), "002_HC_Annotation.png' is empty");
}

TEST_F(FakeHc18, NonBinaryAnnotation) {
  cv::Mat outline = cv::imread(file("001_HC_Annotation.png"), cv::IMREAD_UNCHANGED);
  outline.at<uchar>(7, 9) = 128;
  cv::imwrite(file("001_HC_Annotation.png"), outline);
  EXPECT_ERROR_CONTAINS(read_hc18(root), "001_HC_Annotation.png' is not binary: value 128 at (x=9, y=7)");
}

TEST_F(FakeHc18, TruncatedPng) {
  const std::string image = file("001_2HC.png");
  truncate_file(image, fs::file_size(image) / 2);
  EXPECT_ERROR_CONTAINS(read_hc18(root), "001_2HC.png' cannot be decoded");
}

TEST_F(FakeHc18, GarbagePng) {
  write_text(file("002_HC.png"), "this is not a PNG file at all");
  EXPECT_ERROR_CONTAINS(read_hc18(root), "002_HC.png' cannot be decoded");
}

TEST_F(FakeHc18, MissingCsv) {
  fs::remove(root + "/training_set_pixel_size_and_HC.csv");
  EXPECT_ERROR_CONTAINS(read_hc18(root), "training_set_pixel_size_and_HC.csv' does not exist");
}

TEST_F(FakeHc18, CsvRowWithWrongColumnCount) {
  set_csv("filename,pixel size(mm),head circumference (mm)\r\n001_HC.png,0.1\r\n001_2HC.png,0.2,50\r\n002_HC.png,0.1,5");
  EXPECT_ERROR_CONTAINS(read_hc18(root), "line 2: expected 3 columns");
}

TEST_F(FakeHc18, CsvRowWithNonNumericPixelSize) {
  set_csv("filename,pixel size(mm),head circumference (mm)\r\n001_HC.png,0.1,50\r\n001_2HC.png,0.2mm,50\r\n002_HC.png,0.1,5");
  EXPECT_ERROR_CONTAINS(read_hc18(root), "line 3: pixel size '0.2mm' is not a number");
}

TEST_F(FakeHc18, CsvRowWithNonPositivePixelSize) {
  set_csv("filename,pixel size(mm),head circumference (mm)\r\n001_HC.png,0.1,50\r\n001_2HC.png,0.2,50\r\n002_HC.png,0,5");
  EXPECT_ERROR_CONTAINS(read_hc18(root), "line 4: pixel size must be positive");
}

TEST_F(FakeHc18, CsvWithWrongHeader) {
  set_csv("001_HC.png,0.1,50\r\n001_2HC.png,0.2,50\r\n002_HC.png,0.1,5");
  EXPECT_ERROR_CONTAINS(read_hc18(root), "line 1: expected the header");
}

TEST_F(FakeHc18, ImageMissingFromCsv) {
  set_csv("filename,pixel size(mm),head circumference (mm)\r\n001_HC.png,0.1,50\r\n002_HC.png,0.1,5");
  EXPECT_ERROR_CONTAINS(read_hc18(root), "001_2HC.png' has no row in");
}

TEST_F(FakeHc18, CsvWithByteOrderMarkFinalNewlineAndLfLineEndsIsAccepted) {
  set_csv("\xEF\xBB\xBF" "filename,pixel size(mm),head circumference (mm)\n001_HC.png,0.1,50\n001_2HC.png,0.2,50\n002_HC.png,0.1,5\n");
  EXPECT_EQ(read_hc18(root).samples.size(), 3u);
}

// CR-only line ends (old Mac editors, some spreadsheet exports) used to read as one line, and
// every image was then reported as having "no row".
TEST_F(FakeHc18, CsvWithCrOnlyLineEndsIsAccepted) {
  set_csv("filename,pixel size(mm),head circumference (mm)\r001_HC.png,0.1,50\r001_2HC.png,0.2,50\r002_HC.png,0.15,70\r");
  const Dataset d = read_hc18(root);
  ASSERT_EQ(d.samples.size(), 3u);
  for (const auto& s : d.samples)
    if (s.id == "002_HC") EXPECT_DOUBLE_EQ(s.pixel_size_mm, 0.15);
  // Line numbers in errors count CR-ended lines too.
  set_csv("filename,pixel size(mm),head circumference (mm)\r001_HC.png,0.1,50\r001_2HC.png,x,50\r002_HC.png,0.1,5");
  EXPECT_ERROR_CONTAINS(read_hc18(root), "line 3: pixel size 'x' is not a number");
}

TEST(BadBbbc010, TruncatedTiff) {
  TempDir dir;
  write_fake_well(dir.path.string(), "A01", {"w1", "w2"}, true);
  const std::string tif = find_file_containing(dir.file("BBBC010_v2_images"), "_A01_w2_");
  truncate_file(tif, 300);
  EXPECT_ERROR_CONTAINS(read_bbbc010(dir.path.string(), {"w2"}), "_A01_w2_0A1B2C3D-0000-4E7E-8040-5BC479534681.tif' cannot be decoded");
}

TEST(BadBbbc010, MaskSizeMismatch) {
  TempDir dir;
  write_fake_well(dir.path.string(), "A01", {"w2"}, false);
  cv::imwrite(dir.file("BBBC010_v1_foreground/A01_binary.png"), cv::Mat(10, 10, CV_8UC4, cv::Scalar::all(255)));
  EXPECT_ERROR_CONTAINS(read_bbbc010(dir.path.string()), "A01_binary.png' is 10x10 but its image is 64x48");
}

TEST(BadBbbc010, UnknownChannel) {
  TempDir dir;
  write_fake_well(dir.path.string(), "A01", {"w2"}, true);
  EXPECT_ERROR_CONTAINS(read_bbbc010(dir.path.string(), {"w3"}), "unknown channel 'w3'");
}

TEST(BadFolder, MissingMask) {
  TempDir dir;
  fs::create_directories(dir.file("images"));
  fs::create_directories(dir.file("masks"));
  cv::imwrite(dir.file("images/a.png"), cv::Mat::zeros(8, 8, CV_8UC1));
  EXPECT_ERROR_CONTAINS(read_folder(dir.path.string()), "masks/a.png' is missing for image");
}

TEST(BadFolder, MaskSizeMismatch) {
  TempDir dir;
  fs::create_directories(dir.file("images"));
  fs::create_directories(dir.file("masks"));
  cv::imwrite(dir.file("images/a.png"), cv::Mat::zeros(8, 8, CV_8UC1));
  cv::imwrite(dir.file("masks/a.png"), cv::Mat::ones(8, 9, CV_8UC1));
  EXPECT_ERROR_CONTAINS(read_folder(dir.path.string()), "masks/a.png' is 9x8 but its image");
}

TEST(BadLayout, UnknownLayoutListsTheExpectedOnes) {
  TempDir dir;
  EXPECT_ERROR_CONTAINS(detect_dataset_kind(dir.path.string()), "Expected one of: HC18");
  EXPECT_ERROR_CONTAINS(detect_dataset_kind(dir.file("nope")), "does not exist");
  EXPECT_ERROR_CONTAINS(read_dataset(dir.path.string(), "cityscapes"), "unknown dataset kind 'cityscapes'");
}

}  // namespace
}  // namespace leanseg
