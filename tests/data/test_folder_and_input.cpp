#include <filesystem>

#include "data_fixtures.h"
#include "leanseg/data.h"
#include "leanseg/error.h"

namespace leanseg {
namespace {
using namespace test;
namespace fs = std::filesystem;

struct FolderLayout : ::testing::Test {
  TempDir dir;
  std::string root = dir.path.string();
  void SetUp() override {
    fs::create_directories(root + "/images");
    fs::create_directories(root + "/masks");
  }
  void add(const std::string& image_name, const cv::Mat& image, const cv::Mat& mask) const {
    cv::imwrite(root + "/images/" + image_name, image);
    cv::imwrite(root + "/masks/" + fs::path(image_name).stem().string() + ".png", mask);
  }
};

TEST_F(FolderLayout, GreyImagesWithMasksOfAnyNonZeroValue) {
  cv::Mat mask01 = cv::Mat::zeros(20, 30, CV_8UC1), mask255 = mask01.clone();
  mask01(cv::Rect(2, 2, 5, 5)).setTo(1);
  mask255(cv::Rect(2, 2, 5, 5)).setTo(255);
  add("b.png", cv::Mat(20, 30, CV_8UC1, cv::Scalar(51)), mask01);
  add("a.tif", cv::Mat(20, 30, CV_8UC1, cv::Scalar(102)), mask255);
  add("c.png", cv::Mat(20, 30, CV_8UC1, cv::Scalar(0)), cv::Mat::zeros(20, 30, CV_8UC1));  // negative example
  EXPECT_EQ(detect_dataset_kind(root), "folder");
  const Dataset d = read_dataset(root);
  EXPECT_EQ(d.kind, "folder");
  EXPECT_EQ(d.channels, std::vector<std::string>{"gray"});
  EXPECT_EQ(d.max_value, 255);
  ASSERT_EQ(d.samples.size(), 3u);
  EXPECT_EQ(d.samples[0].id, "a");
  EXPECT_EQ(d.samples[0].group, "a");
  EXPECT_NEAR(d.samples[0].image.at<float>(0, 0), 0.4, 1e-6);
  for (const auto& s : d.samples) EXPECT_EQ(cv::countNonZero((s.mask != 0) & (s.mask != 1)), 0);
  EXPECT_EQ(cv::countNonZero(d.samples[0].mask), 25);
  EXPECT_EQ(cv::countNonZero(d.samples[1].mask), 25);
  EXPECT_ERROR_CONTAINS(read_dataset(root, "folder", {"w2"}), "channel selection applies only to bbbc010");
}

TEST_F(FolderLayout, ColourImagesGiveRgbChannels) {
  cv::Mat mask = cv::Mat::ones(8, 8, CV_8UC1);
  add("x.png", cv::Mat(8, 8, CV_8UC3, cv::Scalar(10, 20, 30)), mask);  // B, G, R
  const Dataset d = read_folder(root);
  EXPECT_EQ(d.channels, (std::vector<std::string>{"r", "g", "b"}));
  const cv::Vec3f px = d.samples[0].image.at<cv::Vec3f>(0, 0);
  EXPECT_NEAR(px[0], 30 / 255.0, 1e-6);
  EXPECT_NEAR(px[2], 10 / 255.0, 1e-6);
}

TEST_F(FolderLayout, SixteenBitImagesScaleBy65535AndMixedDepthsFail) {
  add("a.png", cv::Mat(8, 8, CV_16UC1, cv::Scalar(65535)), cv::Mat::ones(8, 8, CV_8UC1));
  EXPECT_EQ(read_folder(root).max_value, 65535);
  EXPECT_NEAR(read_folder(root).samples[0].image.at<float>(3, 3), 1.0, 1e-6);
  add("b.png", cv::Mat(8, 8, CV_8UC1, cv::Scalar(1)), cv::Mat::ones(8, 8, CV_8UC1));
  EXPECT_ERROR_CONTAINS(read_folder(root), "b.png' has a different bit depth");
}

TEST_F(FolderLayout, AllMasksEmptyIsAnError) {
  add("a.png", cv::Mat(8, 8, CV_8UC1, cv::Scalar(1)), cv::Mat::zeros(8, 8, CV_8UC1));
  EXPECT_ERROR_CONTAINS(read_folder(root), "every mask in");
}

// Non-binary masks (issue 17) used to be binarised at > 0 without a word. Read as binary (a
// binary model, --num-classes 2) they are refused; label masks in general: test_multiclass_data.cpp.
TEST_F(FolderLayout, MasksWithMoreThanOneForegroundValueAreRefused) {
  cv::Mat labels = cv::Mat::zeros(8, 8, CV_8UC1);
  labels(cv::Rect(0, 0, 2, 2)).setTo(1);
  labels(cv::Rect(4, 4, 2, 2)).setTo(2);
  add("a.png", cv::Mat(8, 8, CV_8UC1, cv::Scalar(1)), labels);
  EXPECT_ERROR_CONTAINS(read_folder(root, 2), "mask '" + root + "/masks/a.png' is not binary: it holds the values 0, 1, 2;");
  cv::Mat soft = cv::Mat::zeros(8, 8, CV_8UC1);  // an anti-aliased edge
  soft(cv::Rect(0, 0, 4, 4)).setTo(255);
  soft.at<uchar>(4, 4) = 128;
  add("a.png", cv::Mat(8, 8, CV_8UC1, cv::Scalar(1)), soft);
  EXPECT_ERROR_CONTAINS(read_folder(root, 2), "holds the values 0, 128, 255;");
  EXPECT_ERROR_CONTAINS(read_folder(root), "holds the values 0, 128, 255: neither binary");
  cv::Mat red = cv::Mat::zeros(8, 8, CV_8UC3);  // one colour object on black: binary
  red(cv::Rect(0, 0, 4, 4)).setTo(cv::Scalar(0, 0, 255));
  add("a.png", cv::Mat(8, 8, CV_8UC1, cv::Scalar(1)), red);
  EXPECT_EQ(cv::countNonZero(read_folder(root).samples[0].mask), 16);
}

// Float images (32-bit TIFF) are read by the folder reader and by prediction alike, mapped by
// their own min..max unless a range is given (tests/data/test_tiff_pages.cpp checks the values).
TEST_F(FolderLayout, FloatImagesAreMappedByTheirRange) {
  cv::Mat f(8, 8, CV_32FC1, cv::Scalar(0.5));
  f.at<float>(0, 0) = 2.5f;
  ASSERT_TRUE(cv::imwrite(root + "/images/a.tif", f));
  cv::imwrite(root + "/masks/a.png", cv::Mat::ones(8, 8, CV_8UC1));
  EXPECT_NEAR(read_folder(root).samples[0].image.at<float>(0, 0), 1.0, 1e-6);
  EXPECT_NEAR(read_folder(root).samples[0].image.at<float>(1, 1), 0.0, 1e-6);
  ImageReadOptions range;
  range.intensity_range = {0, 5};
  EXPECT_NEAR(read_input_image({root + "/images/a.tif"}, {"gray"}, "max", 255, range).at<float>(1, 1), 0.1, 1e-6);
  EXPECT_NEAR(read_input_image({root + "/images/a.tif"}, {"gray"}, "minmax", 0).at<float>(1, 1), 0.0, 1e-6);
}

// A folder of several float (or 16-bit) images: each is checked against the first one's depth
// after the first was converted and freed (the check once compared with the freed copy).
TEST_F(FolderLayout, SeveralFloatAndSixteenBitImagesRead) {
  for (const char* stem : {"a", "b", "c"}) {
    cv::Mat f(8, 8, CV_32FC1, cv::Scalar(0.5));
    f.at<float>(0, 0) = 2.5f;
    ASSERT_TRUE(cv::imwrite(root + "/images/" + stem + ".tif", f));
    cv::imwrite(root + "/masks/" + stem + ".png", cv::Mat::ones(8, 8, CV_8UC1));
  }
  EXPECT_EQ(read_folder(root).samples.size(), 3u);
  for (const char* stem : {"a", "b", "c"})
    ASSERT_TRUE(cv::imwrite(root + "/images/" + stem + ".tif", cv::Mat(8, 8, CV_16UC1, cv::Scalar(1000))));
  const Dataset d = read_folder(root);
  ASSERT_EQ(d.samples.size(), 3u);
  EXPECT_NEAR(d.samples[2].image.at<float>(0, 0), 1000 / 65535.0, 1e-6);
}

// Multi-page TIFFs: page 0 unless --page says otherwise (not silently: a warning says so).
TEST_F(FolderLayout, MultiPageTiffsReadTheChosenPage) {
  const std::string tif = root + "/images/a.tif";
  ASSERT_TRUE(cv::imwritemulti(tif, std::vector<cv::Mat>{cv::Mat(8, 8, CV_8UC1, cv::Scalar(10)),
                                                          cv::Mat(8, 8, CV_8UC1, cv::Scalar(20))}));
  cv::imwrite(root + "/masks/a.png", cv::Mat::ones(8, 8, CV_8UC1));
  EXPECT_NEAR(read_folder(root).samples[0].image.at<float>(0, 0), 10 / 255.0, 1e-6);
  ImageReadOptions page1;
  page1.page = 1;
  EXPECT_NEAR(read_folder(root, 0, page1).samples[0].image.at<float>(0, 0), 20 / 255.0, 1e-6);
  EXPECT_NEAR(read_input_image({tif}, {"gray"}, "max", 255, page1).at<float>(0, 0), 20 / 255.0, 1e-6);
  cv::imwrite(tif, cv::Mat(8, 8, CV_8UC1, cv::Scalar(10)));  // one page: fine
  EXPECT_NEAR(read_input_image({tif}, {"gray"}, "max", 255).at<float>(0, 0), 10 / 255.0, 1e-6);
}

// A 16-bit PNG given to a model of 8-bit images used to saturate (x / 255 clamped to 1).
TEST(ReadInputImage, ScalesAFileOfAnotherBitDepthByItsOwn) {
  TempDir dir;
  const std::string g16 = dir.file("g16.png"), g8 = dir.file("g8.png");
  cv::imwrite(g16, cv::Mat(4, 6, CV_16UC1, cv::Scalar(16384)));
  cv::imwrite(g8, cv::Mat(4, 6, CV_8UC1, cv::Scalar(51)));
  EXPECT_NEAR(read_input_image({g16}, {"gray"}, "max", 255).at<float>(1, 1), 16384 / 65535.0, 1e-6);
  EXPECT_NEAR(read_input_image({g16}, {"gray"}, "max", 4095).at<float>(1, 1), 1.0, 1e-6);  // 16-bit model: by 4095, clamped
  EXPECT_NEAR(read_input_image({g16}, {"gray"}, "max", 65535).at<float>(1, 1), 16384 / 65535.0, 1e-6);
  EXPECT_NEAR(read_input_image({g8}, {"gray"}, "max", 255).at<float>(1, 1), 0.2, 1e-6);
  EXPECT_NEAR(read_input_image({g8}, {"w2"}, "max", 4095).at<float>(1, 1), 0.2, 1e-6);
}

TEST(DatasetKind, DetectsHc18AndBbbc010Layouts) {
  TempDir hc, bb;
  make_fake_hc18(hc.path.string(), three_fake_heads());
  write_fake_well(bb.path.string(), "A01", {"w1", "w2"}, true);
  EXPECT_EQ(detect_dataset_kind(hc.path.string()), "hc18");
  EXPECT_EQ(detect_dataset_kind(bb.path.string()), "bbbc010");
  EXPECT_EQ(read_dataset(bb.path.string(), "auto", {"w1", "w2"}).channels, (std::vector<std::string>{"w1", "w2"}));
  EXPECT_EQ(read_dataset(bb.path.string()).channels, std::vector<std::string>{"w2"});
  EXPECT_EQ(read_dataset(hc.path.string(), "auto", {"gray"}).samples.size(), 3u);
}

TEST(ReadInputImage, ScalesPicksChannelsAndStretches) {
  TempDir dir;
  const std::string colour = dir.file("c.png"), grey16 = dir.file("g.png");
  cv::imwrite(colour, cv::Mat(4, 6, CV_8UC3, cv::Scalar(10, 20, 30)));
  cv::Mat g(4, 6, CV_16UC1, cv::Scalar(1000));
  g.at<uint16_t>(0, 0) = 3000;
  cv::imwrite(grey16, g);

  const cv::Mat rgb = read_input_image({colour}, {"r", "g", "b"}, "max", 255);
  ASSERT_EQ(rgb.type(), CV_32FC3);
  EXPECT_NEAR(rgb.at<cv::Vec3f>(1, 1)[0], 30 / 255.0, 1e-6);
  const cv::Mat grey = read_input_image({colour}, {"gray"}, "max", 255);
  ASSERT_EQ(grey.type(), CV_32FC1);
  EXPECT_NEAR(grey.at<float>(1, 1), (0.299 * 30 + 0.587 * 20 + 0.114 * 10) / 255.0, 1.0 / 255);

  const cv::Mat scaled = read_input_image({grey16}, {"w2"}, "max", 4095);
  EXPECT_NEAR(scaled.at<float>(1, 1), 1000 / 4095.0, 1e-6);
  const cv::Mat stretched = read_input_image({grey16}, {"gray"}, "minmax", 0);
  EXPECT_NEAR(stretched.at<float>(0, 0), 1.0, 1e-6);
  EXPECT_NEAR(stretched.at<float>(1, 1), 0.0, 1e-6);

  const cv::Mat two = read_input_image({grey16, colour}, {"w1", "r"}, "max", 4095);
  EXPECT_EQ(two.type(), CV_32FC2);

  EXPECT_ERROR_CONTAINS(read_input_image({dir.file("none.png")}, {"gray"}, "max", 255), "none.png' does not exist");
  EXPECT_ERROR_CONTAINS(read_input_image({colour}, {"w1"}, "max", 255), "is a colour image");
  EXPECT_ERROR_CONTAINS(read_input_image({colour}, {"gray"}, "loud", 255), "unknown intensity scaling 'loud'");
  EXPECT_ERROR_CONTAINS(read_input_image({colour, colour}, {"gray"}, "max", 255), "one file per channel");
}

}  // namespace
}  // namespace leanseg
