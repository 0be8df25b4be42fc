#include <filesystem>
#include <opencv2/imgcodecs.hpp>

#include "data_fixtures.h"
#include "leanseg/data.h"
#include "leanseg/error.h"

namespace leanseg {
namespace {
using namespace test;
namespace fs = std::filesystem;

TEST(Bbbc010Reader, FakeWellsWithMissingChannelOrMaskAreSkippedWithAWarning) {
  TempDir dir;
  const std::string root = dir.path.string();
  write_fake_well(root, "A01", {"w1", "w2"}, true);
  write_fake_well(root, "B02", {"w1"}, true);        // like D24: no w2
  write_fake_well(root, "C03", {"w1", "w2"}, false);  // no mask
  ::testing::internal::CaptureStderr();
  const Dataset d = read_bbbc010(root, {"w2"});
  const std::string warnings = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(d.samples.size(), 1u);
  EXPECT_EQ(d.samples[0].id, "A01");
  EXPECT_EQ(d.samples[0].group, "A01");
  EXPECT_NE(warnings.find("skipping well B02: no w2 image"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("skipping well C03: mask"), std::string::npos) << warnings;

  ::testing::internal::CaptureStderr();
  const Dataset w1 = read_bbbc010(root, {"w1"});
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(w1.samples.size(), 2u);  // A01, B02
}

TEST(Bbbc010Reader, FakeWellMergesChannelsInRequestedOrderAndScalesBy4095) {
  TempDir dir;
  write_fake_well(dir.path.string(), "A01", {"w1", "w2"}, true);
  const Dataset d = read_bbbc010(dir.path.string(), {"w2", "w1"});
  EXPECT_EQ(d.kind, "bbbc010");
  EXPECT_EQ(d.channels, (std::vector<std::string>{"w2", "w1"}));
  EXPECT_EQ(d.max_value, 4095);
  ASSERT_EQ(d.samples.size(), 1u);
  const Sample& s = d.samples[0];
  ASSERT_EQ(s.image.type(), CV_32FC2);
  const cv::Vec2f corner = s.image.at<cv::Vec2f>(47, 63);
  EXPECT_NEAR(corner[0], 3000 / 4095.0, 1e-6);  // w2 first
  EXPECT_NEAR(corner[1], 300 / 4095.0, 1e-6);
  // Mask: white line and the red-only pixel are worm; the opaque alpha alone is not.
  ASSERT_EQ(s.mask.type(), CV_8UC1);
  EXPECT_EQ(s.mask.at<uchar>(5, 5), 1);
  EXPECT_EQ(s.mask.at<uchar>(40, 60), 1);
  EXPECT_EQ(s.mask.at<uchar>(47, 0), 0);
  EXPECT_EQ(cv::countNonZero((s.mask != 0) & (s.mask != 1)), 0);
}

// The A24 w2 file is the only PackBits-compressed TIFF of the set.
TEST(Bbbc010Reader, RealPackBitsTiffDecodesToAPlausibleImage) {
  if (!have_dir(real_bbbc010_dir())) GTEST_SKIP() << "no real BBBC010 data in " << real_bbbc010_dir();
  const std::string images = real_bbbc010_dir() + "/BBBC010_v2_images";
  const std::string packbits = find_file_containing(images, "_A24_w2_");
  ASSERT_FALSE(packbits.empty());
  const cv::Mat raw = cv::imread(packbits, cv::IMREAD_UNCHANGED);
  ASSERT_EQ(raw.type(), CV_16UC1);
  EXPECT_EQ(raw.size(), cv::Size(696, 520));
  double lo = 0, hi = 0;
  cv::minMaxLoc(raw, &lo, &hi);
  EXPECT_GT(lo, 0);
  EXPECT_LE(hi, 4095);

  // Through the reader, on a copy holding only wells A24 and A01.
  TempDir dir;
  fs::create_directories(dir.file("BBBC010_v2_images"));
  fs::create_directories(dir.file("BBBC010_v1_foreground"));
  for (const std::string well : {"A24", "A01"}) {
    for (const std::string c : {"_w1_", "_w2_"}) {
      const std::string f = find_file_containing(images, "_" + well + c);
      fs::copy_file(f, dir.file("BBBC010_v2_images/" + fs::path(f).filename().string()));
    }
    fs::copy_file(real_bbbc010_dir() + "/BBBC010_v1_foreground/" + well + "_binary.png",
                  dir.file("BBBC010_v1_foreground/" + well + "_binary.png"));
  }
  const Dataset d = read_bbbc010(dir.path.string(), {"w1", "w2"});
  ASSERT_EQ(d.samples.size(), 2u);
  const Sample& a24 = d.samples[1];
  ASSERT_EQ(a24.id, "A24");
  ASSERT_EQ(a24.image.type(), CV_32FC2);
  EXPECT_EQ(a24.image.size(), cv::Size(696, 520));
  cv::Mat w2;
  cv::extractChannel(a24.image, w2, 1);
  cv::Mat raw_scaled;
  raw.convertTo(raw_scaled, CV_32F, 1 / 4095.0);
  EXPECT_LT(cv::norm(w2, raw_scaled, cv::NORM_INF), 1e-6);
  // A correct decode shows the transmitted-light picture: a bright well disc in the middle,
  // darker corners, and worms darker than the disc around them. Garbled strips would not.
  const cv::Rect centre(248, 160, 200, 200);
  const double centre_mean = cv::mean(w2(centre))[0];
  const double corner_mean = cv::mean(w2(cv::Rect(0, 0, 40, 40)))[0];
  EXPECT_GT(centre_mean, corner_mean + 0.1);
  cv::Mat disc = (w2 > 0.5 * centre_mean) & (a24.mask == 0);
  cv::Mat worm = (a24.mask != 0);
  ASSERT_GT(cv::countNonZero(worm), 100);
  EXPECT_LT(cv::mean(w2, worm)[0], cv::mean(w2, disc)[0]);
}

}  // namespace
}  // namespace leanseg
