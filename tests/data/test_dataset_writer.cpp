// Synthetic datasets written to disk (`leanseg synth`) read back through the ordinary readers:
// the same masks, pixel sizes and HC, the images to 8-bit rounding.
#include <filesystem>
#include <fstream>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "test_util.h"

namespace leanseg {
namespace {

void expect_same_samples(const Dataset& written, const Dataset& read) {
  ASSERT_EQ(read.samples.size(), written.samples.size());
  for (size_t i = 0; i < read.samples.size(); ++i) {
    const Sample &w = written.samples[i], &r = read.samples[i];
    ASSERT_EQ(r.mask.size(), w.mask.size()) << i;
    EXPECT_EQ(cv::countNonZero(r.mask != w.mask), 0) << "mask " << i;
    EXPECT_LE(cv::norm(r.image, w.image, cv::NORM_INF), 0.5 / 255 + 1e-6) << "image " << i;  // 8-bit rounding
    EXPECT_EQ(r.pixel_size_mm, w.pixel_size_mm) << i;
    EXPECT_EQ(r.hc_mm, w.hc_mm) << i;
  }
}

TEST(WriteDataset, UltrasoundGoesToTheHc18LayoutWithPixelSizesAndHc) {
  test::TempDir dir;
  const Dataset d = make_synthetic_ultrasound(4, 64, 80, 3);
  write_dataset(d, dir.file("us"));
  EXPECT_TRUE(std::filesystem::exists(dir.file("us/training_set/003_HC_Annotation.png")));
  const Dataset back = read_dataset(dir.file("us"));
  EXPECT_EQ(back.kind, "hc18");
  expect_same_samples(d, back);
  EXPECT_EQ(back.samples[2].group, "002");  // one exam per image: they split
}

TEST(WriteDataset, WormsGoToImageAndMaskFolders) {
  test::TempDir dir;
  const Dataset d = make_synthetic_worms(3, 48, 64, 5);
  write_dataset(d, dir.file("worms"));
  const Dataset back = read_dataset(dir.file("worms"));
  EXPECT_EQ(back.kind, "folder");
  expect_same_samples(d, back);
  EXPECT_EQ(back.samples[1].id, "worms_0001");
}

TEST(WriteDataset, RefusesAFolderThatIsNotEmpty) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.file("full"));
  std::ofstream(dir.file("full/notes.txt")) << "mine";
  EXPECT_ERROR_CONTAINS(write_dataset(make_synthetic_worms(1, 32, 32, 1), dir.file("full")),
                        "output folder '" + dir.file("full") + "' exists and is not empty");
}

}  // namespace
}  // namespace leanseg
