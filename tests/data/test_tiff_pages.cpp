// Multi-page, multi-channel and float TIFFs (src/data/tiff_image.cpp): files written here with
// libtiff, read back through read_input_image and read_folder with a page and channel chosen;
// the exact pixels chosen and the messages naming the file.
#include <tiffio.h>

#include <filesystem>
#include <opencv2/imgcodecs.hpp>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "test_util.h"

namespace leanseg {
namespace {
using test::TempDir;

// One TIFF page per matrix (all of one type): 8/16-bit unsigned or 32-bit float, 1..n samples
// (contiguous, or one plane per sample with `separate`), grey (MINISBLACK) unless `rgb`.
void write_pages(const std::string& path, const std::vector<cv::Mat>& pages, bool separate = false, bool rgb = false,
                 const std::string& description = "") {
  TIFF* t = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(t, nullptr);
  for (const cv::Mat& m : pages) {
    const int n = m.channels(), bytes = static_cast<int>(m.elemSize1());
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, m.cols);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, m.rows);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, bytes * 8);
    TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, m.depth() == CV_32F ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, n);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, rgb ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, separate ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 2);  // several strips per page
    if (!description.empty() && &m == &pages[0]) TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, description.c_str());
    if (separate) {
      std::vector<cv::Mat> planes;
      cv::split(m, planes);
      for (int c = 0; c < n; ++c)
        for (int y = 0; y < m.rows; ++y)
          ASSERT_EQ(TIFFWriteScanline(t, planes[c].ptr(y), static_cast<uint32_t>(y), static_cast<uint16_t>(c)), 1);
    } else {
      for (int y = 0; y < m.rows; ++y)
        ASSERT_EQ(TIFFWriteScanline(t, const_cast<uchar*>(m.ptr(y)), static_cast<uint32_t>(y), 0), 1);
    }
    ASSERT_EQ(TIFFWriteDirectory(t), 1);
  }
  TIFFClose(t);
}

// A 16-bit page whose pixel (y, x) holds base + 10 y + x: a wrong page, row or column shows.
cv::Mat ramp16(int base, int rows = 5, int cols = 7) {
  cv::Mat m(rows, cols, CV_16UC1);
  for (int y = 0; y < rows; ++y)
    for (int x = 0; x < cols; ++x) m.at<uint16_t>(y, x) = static_cast<uint16_t>(base + 10 * y + x);
  return m;
}

ImageReadOptions page_channel(int page, int channel) {
  ImageReadOptions o;
  o.page = page, o.channel = channel;
  return o;
}

TEST(TiffPages, MultiPage16BitReadsTheChosenPageExactly) {
  TempDir dir;
  const std::string tif = dir.file("stack.tif");
  write_pages(tif, {ramp16(1000), ramp16(2000), ramp16(3000)});
  const cv::Mat p2 = read_input_image({tif}, {"gray"}, "max", 65535, page_channel(2, -1));
  ASSERT_EQ(p2.size(), cv::Size(7, 5));
  EXPECT_FLOAT_EQ(p2.at<float>(3, 4), static_cast<float>(3034 / 65535.0));
  EXPECT_FLOAT_EQ(read_input_image({tif}, {"gray"}, "max", 65535, page_channel(1, -1)).at<float>(0, 6),
                  static_cast<float>(2006 / 65535.0));
  // Not given: page 0, and a warning names the file.
  testing::internal::CaptureStderr();
  const cv::Mat p0 = read_input_image({tif}, {"gray"}, "max", 65535);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_FLOAT_EQ(p0.at<float>(4, 0), static_cast<float>(1040 / 65535.0));
  EXPECT_NE(err.find("input image '" + tif + "' has 3 pages; reading page 0 (--page N chooses another)"), std::string::npos) << err;
  EXPECT_ERROR_CONTAINS(read_input_image({tif}, {"gray"}, "max", 65535, page_channel(3, -1)),
                        "input image '" + tif + "' has 3 pages; --page 3 is out of range (0..2)");
  // Other formats have one page.
  cv::imwrite(dir.file("a.png"), cv::Mat(4, 4, CV_8UC1, cv::Scalar(1)));
  EXPECT_ERROR_CONTAINS(read_input_image({dir.file("a.png")}, {"gray"}, "max", 255, page_channel(1, -1)),
                        "input image '" + dir.file("a.png") + "' has one page; --page 1 applies to multi-page TIFFs");
}

TEST(TiffPages, MultiChannelNeedsAChannelAndReadsItExactly) {
  TempDir dir;
  const std::string contig = dir.file("c3.tif"), planar = dir.file("p3.tif");
  cv::Mat three;
  cv::merge(std::vector<cv::Mat>{ramp16(100), ramp16(200), ramp16(300)}, three);
  write_pages(contig, {three});
  write_pages(planar, {three, three + cv::Scalar(5, 5, 5)}, /*separate=*/true);
  EXPECT_ERROR_CONTAINS(read_input_image({contig}, {"gray"}, "max", 65535),
                        "input image '" + contig + "' has 3 channels; choose one with --channel 0..2");
  EXPECT_ERROR_CONTAINS(read_input_image({planar}, {"gray"}, "max", 65535, page_channel(1, -1)),
                        "input image '" + planar + "' has 3 channels (page 1); choose one with --channel 0..2");
  EXPECT_FLOAT_EQ(read_input_image({contig}, {"gray"}, "max", 65535, page_channel(-1, 2)).at<float>(2, 3),
                  static_cast<float>(323 / 65535.0));
  EXPECT_FLOAT_EQ(read_input_image({contig}, {"gray"}, "max", 65535, page_channel(-1, 0)).at<float>(2, 3),
                  static_cast<float>(123 / 65535.0));
  // One plane per sample, second page: sample 1 of page 1.
  EXPECT_FLOAT_EQ(read_input_image({planar}, {"gray"}, "max", 65535, page_channel(1, 1)).at<float>(4, 6),
                  static_cast<float>(251 / 65535.0));
  EXPECT_ERROR_CONTAINS(read_input_image({contig}, {"gray"}, "max", 65535, page_channel(0, 3)),
                        "image '" + contig + "' has 3 channels; --channel 3 is out of range (0..2)");
  // A colour TIFF is still colour (grey from R, G, B), and --channel counts R, G, B in file order.
  cv::Mat rgb(2, 2, CV_8UC3, cv::Scalar(10, 20, 30));  // written as R=10, G=20, B=30 (PHOTOMETRIC_RGB)
  write_pages(dir.file("rgb.tif"), {rgb}, false, /*rgb=*/true);
  EXPECT_FLOAT_EQ(read_input_image({dir.file("rgb.tif")}, {"r"}, "max", 255).at<float>(1, 1), 10 / 255.0f);
  EXPECT_FLOAT_EQ(read_input_image({dir.file("rgb.tif")}, {"gray"}, "max", 255, page_channel(-1, 0)).at<float>(0, 0),
                  10 / 255.0f);
  EXPECT_FLOAT_EQ(read_input_image({dir.file("rgb.tif")}, {"gray"}, "max", 255, page_channel(-1, 2)).at<float>(0, 0),
                  30 / 255.0f);
}

TEST(TiffPages, Float32MapsByTheGivenRangeOrItsOwn) {
  TempDir dir;
  const std::string tif = dir.file("f.tif");
  cv::Mat f(4, 6, CV_32FC1, cv::Scalar(-1.0f));
  f.at<float>(1, 2) = 3.0f;
  f.at<float>(2, 2) = 1.0f;
  write_pages(tif, {f, f * 2});
  testing::internal::CaptureStderr();
  const cv::Mat own = read_input_image({tif}, {"gray"}, "max", 255, page_channel(1, -1));
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_FLOAT_EQ(own.at<float>(0, 0), 0.0f);   // -2 -> 0
  EXPECT_FLOAT_EQ(own.at<float>(1, 2), 1.0f);   //  6 -> 1
  EXPECT_FLOAT_EQ(own.at<float>(2, 2), 0.5f);   //  2 -> 0.5
  EXPECT_NE(err.find("image '" + tif + "' has float pixels; mapped by its own range -2..6 to [0, 1]"), std::string::npos) << err;
  ImageReadOptions range = page_channel(0, -1);
  range.intensity_range = parse_intensity_range("0,2", "--intensity-range");
  const cv::Mat fixed = read_input_image({tif}, {"gray"}, "max", 255, range);
  EXPECT_FLOAT_EQ(fixed.at<float>(0, 0), 0.0f);  // -1 clamped
  EXPECT_FLOAT_EQ(fixed.at<float>(2, 2), 0.5f);
  EXPECT_FLOAT_EQ(fixed.at<float>(1, 2), 1.0f);  // 3 clamped
  EXPECT_ERROR_CONTAINS(parse_intensity_range("2,1", "--intensity-range"),
                        "--intensity-range: expected LO,HI with LO < HI (the float values that map to 0 and 1), got '2,1'");
  EXPECT_ERROR_CONTAINS(parse_intensity_range("0", "--intensity-range"), "got '0'");
}

// A folder of multi-page float stacks with single-page masks: the page and the range apply to the
// images, the masks are read whole, and the dataset records the range for the model file.
TEST(TiffPages, FolderOfStacksTakesThePageAndRecordsTheRange) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("d/images"));
  std::filesystem::create_directories(dir.file("d/masks"));
  cv::Mat a(6, 6, CV_32FC1, cv::Scalar(100.0f)), b(6, 6, CV_32FC1, cv::Scalar(300.0f));
  write_pages(dir.file("d/images/s.tif"), {a, b}, false, false,
              "<OME><Image><Pixels PhysicalSizeX=\"0.5\" PhysicalSizeXUnit=\"mm\" SizeC=\"1\"/></Image></OME>");
  cv::Mat mask = cv::Mat::zeros(6, 6, CV_8UC1);
  mask(cv::Rect(1, 1, 3, 3)).setTo(255);
  cv::imwrite(dir.file("d/masks/s.png"), mask);
  ImageReadOptions o = page_channel(1, -1);
  o.intensity_range = {0, 400};
  const Dataset d = read_folder(dir.file("d"), 0, o);
  ASSERT_EQ(d.samples.size(), 1u);
  EXPECT_FLOAT_EQ(d.samples[0].image.at<float>(0, 0), 0.75f);
  EXPECT_EQ(d.intensity_range, (std::vector<double>{0, 400}));
  EXPECT_EQ(cv::countNonZero(d.samples[0].mask), 9);
  EXPECT_DOUBLE_EQ(d.samples[0].pixel_size_mm, 0.5);  // OME pixel size of a multi-page file
}

}  // namespace
}  // namespace leanseg
