// DICOM input (src/data/dicom.cpp): files written here with GDCM read back with their pixels and
// the pixel spacing of their header (Pixel Spacing, or an ultrasound region's PhysicalDeltaX in
// cm); wrong files fail naming the file.
#include <gdcmAttribute.h>
#include <gdcmImageWriter.h>
#include <gdcmSequenceOfItems.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "data/image_io.h"
#include "leanseg/data.h"
#include "leanseg/error.h"
#include "test_util.h"

namespace leanseg {
namespace {

enum class Spacing { None, PixelSpacing, UltrasoundRegion };

void write_dicom(const std::string& path, const cv::Mat& m, Spacing spacing, bool monochrome1 = false, int frames = 1) {
  gdcm::ImageWriter w;
  gdcm::Image& im = w.GetImage();
  im.SetNumberOfDimensions(frames > 1 ? 3 : 2);
  im.SetDimension(0, static_cast<unsigned int>(m.cols));
  im.SetDimension(1, static_cast<unsigned int>(m.rows));
  if (frames > 1) im.SetDimension(2, static_cast<unsigned int>(frames));
  im.SetPixelFormat(gdcm::PixelFormat(m.depth() == CV_8U ? gdcm::PixelFormat::UINT8 : gdcm::PixelFormat::UINT16));
  im.SetPhotometricInterpretation(monochrome1 ? gdcm::PhotometricInterpretation::MONOCHROME1
                                              : gdcm::PhotometricInterpretation::MONOCHROME2);
  std::string bytes;
  for (int f = 0; f < frames; ++f) bytes.append(reinterpret_cast<const char*>(m.data), m.total() * m.elemSize());
  gdcm::DataElement pixels(gdcm::Tag(0x7fe0, 0x0010));
  pixels.SetByteValue(bytes.data(), static_cast<uint32_t>(bytes.size()));
  im.SetDataElement(pixels);
  gdcm::DataSet& ds = w.GetFile().GetDataSet();
  gdcm::Attribute<0x0008, 0x0060> modality = {"US"};
  ds.Replace(modality.GetAsDataElement());
  if (spacing == Spacing::PixelSpacing) {
    im.SetSpacing(0, 0.25);
    im.SetSpacing(1, 0.25);
    gdcm::Attribute<0x0028, 0x0030> ps = {{0.25, 0.25}};
    ds.Replace(ps.GetAsDataElement());
  } else if (spacing == Spacing::UltrasoundRegion) {
    // GDCM writes an ultrasound image's spacing into its region as PhysicalDeltaX (cm): set it
    // there too, or the writer replaces the region below with its default of 1.
    im.SetSpacing(0, 0.03);
    im.SetSpacing(1, 0.03);
    gdcm::SmartPointer<gdcm::SequenceOfItems> sq = new gdcm::SequenceOfItems;
    sq->SetLengthToUndefined();
    gdcm::Item item;
    item.SetVLToUndefined();
    gdcm::Attribute<0x0018, 0x6024> units = {3};  // cm
    gdcm::Attribute<0x0018, 0x602c> dx = {0.03};
    item.GetNestedDataSet().Insert(units.GetAsDataElement());
    item.GetNestedDataSet().Insert(dx.GetAsDataElement());
    sq->AddItem(item);
    gdcm::DataElement regions(gdcm::Tag(0x0018, 0x6011));
    regions.SetVR(gdcm::VR::SQ);
    regions.SetValue(*sq);
    regions.SetVLToUndefined();
    ds.Insert(regions);
  }
  w.SetFileName(path.c_str());
  ASSERT_TRUE(w.Write()) << path;
}

cv::Mat disc_image(int depth) {
  cv::Mat m(48, 64, depth, cv::Scalar(depth == CV_8U ? 20 : 300));
  cv::circle(m, {30, 24}, 12, cv::Scalar(depth == CV_8U ? 200 : 3000), cv::FILLED);
  m.at<uchar>(0, 0) = 7;  // orientation: a value in the first row's first pixel
  return m;
}

TEST(Dicom, PixelsAndPixelSpacingComeFromTheFile) {
  test::TempDir dir;
  const cv::Mat m = disc_image(CV_8U);
  write_dicom(dir.file("a.dcm"), m, Spacing::PixelSpacing);
  const cv::Mat back = data_detail::read_raw_image(dir.file("a.dcm"), "image");
  ASSERT_EQ(back.type(), CV_8UC1);
  EXPECT_EQ(cv::norm(back, m, cv::NORM_INF), 0);
  EXPECT_DOUBLE_EQ(image_pixel_size_mm(dir.file("a.dcm")), 0.25);
  write_dicom(dir.file("us.dcm"), m, Spacing::UltrasoundRegion);
  EXPECT_DOUBLE_EQ(image_pixel_size_mm(dir.file("us.dcm")), 0.3);  // 0.03 cm
  write_dicom(dir.file("none.dcm"), m, Spacing::None);
  EXPECT_EQ(image_pixel_size_mm(dir.file("none.dcm")), 0);
  EXPECT_EQ(image_pixel_size_mm(dir.file("x.png")), 0);  // not DICOM: nothing recorded
}

TEST(Dicom, Monochrome1IsInvertedAnd16BitKept) {
  test::TempDir dir;
  cv::Mat m = disc_image(CV_16U);
  write_dicom(dir.file("m1.dcm"), m, Spacing::None, /*monochrome1=*/true);
  const cv::Mat back = data_detail::read_raw_image(dir.file("m1.dcm"), "image");
  ASSERT_EQ(back.type(), CV_16UC1);
  cv::Mat expected;
  m.convertTo(expected, CV_16U, -1, 65535);  // 16 bits stored: white is 0
  EXPECT_EQ(cv::norm(back, expected, cv::NORM_INF), 0);
}

TEST(Dicom, FolderDatasetsTakeTheSpacingForDistancesInMm) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.file("d/images"));
  std::filesystem::create_directories(dir.file("d/masks"));
  const cv::Mat m = disc_image(CV_8U);
  for (int i = 0; i < 2; ++i) {
    write_dicom(dir.file("d/images/s" + std::to_string(i) + ".dcm"), m, i ? Spacing::UltrasoundRegion : Spacing::PixelSpacing);
    cv::imwrite(dir.file("d/masks/s" + std::to_string(i) + ".png"), (m > 100));
  }
  const Dataset d = read_dataset(dir.file("d"));
  ASSERT_EQ(d.samples.size(), 2u);
  EXPECT_DOUBLE_EQ(d.samples[0].pixel_size_mm, 0.25);
  EXPECT_DOUBLE_EQ(d.samples[1].pixel_size_mm, 0.3);
  EXPECT_NEAR(d.samples[0].image.at<float>(24, 30), 200.0 / 255, 1e-6);
  // Predicting reads DICOM like the dataset readers.
  const cv::Mat in = read_input_image({dir.file("d/images/s0.dcm")}, {"gray"}, "max", 255);
  EXPECT_EQ(cv::norm(in, d.samples[0].image, cv::NORM_INF), 0);
}

TEST(Dicom, WrongFilesNameTheFile) {
  test::TempDir dir;
  write_dicom(dir.file("cine.dcm"), disc_image(CV_8U), Spacing::None, false, /*frames=*/3);
  EXPECT_ERROR_CONTAINS(data_detail::read_raw_image(dir.file("cine.dcm"), "image"),
                        "image '" + dir.file("cine.dcm") + "' has 3 frames (a cine loop)");
  std::ofstream(dir.file("junk.dcm")) << "not a DICOM file at all";
  EXPECT_ERROR_CONTAINS(data_detail::read_raw_image(dir.file("junk.dcm"), "image"),
                        "image '" + dir.file("junk.dcm") + "' is not a DICOM image GDCM can read");
  EXPECT_ERROR_CONTAINS(image_pixel_size_mm(dir.file("junk.dcm")), "junk.dcm");
}

}  // namespace
}  // namespace leanseg
