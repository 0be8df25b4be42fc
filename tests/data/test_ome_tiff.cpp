// OME-TIFF physical pixel size (src/data/pixel_size.cpp): written here with libtiff, read back in
// mm from the OME-XML's PhysicalSizeX and its unit; folder datasets of such files get distances
// in mm.
#include <tiffio.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "test_util.h"

namespace leanseg {
namespace {

std::string ome_xml(const std::string& size_attributes) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\">"
         "<Image ID=\"Image:0\"><Pixels ID=\"Pixels:0\" DimensionOrder=\"XYCZT\" Type=\"uint8\" SizeX=\"40\" SizeY=\"30\" "
         "SizeC=\"1\" SizeZ=\"1\" SizeT=\"1\" " + size_attributes + "><Channel ID=\"Channel:0:0\"/></Pixels></Image></OME>";
}

// A single-page 8-bit grey TIFF with `description` as its ImageDescription.
void write_tiff(const std::string& path, const cv::Mat& m, const std::string& description) {
  TIFF* t = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(t, nullptr);
  TIFFSetField(t, TIFFTAG_IMAGEWIDTH, m.cols);
  TIFFSetField(t, TIFFTAG_IMAGELENGTH, m.rows);
  TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
  TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
  TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, m.rows);
  if (!description.empty()) TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, description.c_str());
  for (int y = 0; y < m.rows; ++y) TIFFWriteScanline(t, const_cast<uchar*>(m.ptr<uchar>(y)), static_cast<uint32_t>(y), 0);
  TIFFClose(t);
}

cv::Mat disc() {
  cv::Mat m(30, 40, CV_8UC1, cv::Scalar(10));
  cv::circle(m, {20, 15}, 8, cv::Scalar(200), cv::FILLED);
  return m;
}

TEST(OmeTiff, PhysicalSizeXInItsUnitBecomesMm) {
  test::TempDir dir;
  write_tiff(dir.file("um.ome.tif"), disc(), ome_xml("PhysicalSizeX=\"0.65\" PhysicalSizeY=\"0.65\""));  // default µm
  EXPECT_DOUBLE_EQ(image_pixel_size_mm(dir.file("um.ome.tif")), 0.65e-3);
  write_tiff(dir.file("nm.ome.tif"), disc(), ome_xml("PhysicalSizeX=\"325\" PhysicalSizeXUnit=\"nm\""));
  EXPECT_DOUBLE_EQ(image_pixel_size_mm(dir.file("nm.ome.tif")), 325e-6);
  write_tiff(dir.file("mm.tif"), disc(), ome_xml("PhysicalSizeXUnit=\"mm\" PhysicalSizeX=\"0.2\""));
  EXPECT_DOUBLE_EQ(image_pixel_size_mm(dir.file("mm.tif")), 0.2);
  write_tiff(dir.file("plain.tif"), disc(), "ImageJ=1.54f\nunit=micron\n");  // no OME-XML: unknown
  EXPECT_EQ(image_pixel_size_mm(dir.file("plain.tif")), 0);
  write_tiff(dir.file("px.tif"), disc(), ome_xml("PhysicalSizeX=\"1\" PhysicalSizeXUnit=\"pixel\""));
  EXPECT_EQ(image_pixel_size_mm(dir.file("px.tif")), 0);
  std::ofstream(dir.file("junk.tif")) << "no TIFF";
  EXPECT_ERROR_CONTAINS(image_pixel_size_mm(dir.file("junk.tif")), "TIFF image '" + dir.file("junk.tif") + "' cannot be opened");
}

TEST(OmeTiff, FolderDatasetsTakeThePixelSize) {
  test::TempDir dir;
  std::filesystem::create_directories(dir.file("d/images"));
  std::filesystem::create_directories(dir.file("d/masks"));
  write_tiff(dir.file("d/images/a.ome.tif"), disc(), ome_xml("PhysicalSizeX=\"2.5\" PhysicalSizeXUnit=\"\xC2\xB5m\""));
  cv::imwrite(dir.file("d/masks/a.ome.png"), disc() > 100);
  const Dataset d = read_dataset(dir.file("d"));
  ASSERT_EQ(d.samples.size(), 1u);
  EXPECT_DOUBLE_EQ(d.samples[0].pixel_size_mm, 2.5e-3);
  EXPECT_NEAR(d.samples[0].image.at<float>(15, 20), 200.0 / 255, 1e-6);
}

}  // namespace
}  // namespace leanseg
