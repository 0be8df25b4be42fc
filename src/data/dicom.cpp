// DICOM input (ultrasound): pixels and the pixel spacing from the header, through GDCM, the
// DICOM library OpenCV's image codecs already load in Debian (no extra package or memory).
#include "dicom.h"

#include <gdcmAttribute.h>
#include <gdcmImageReader.h>
#include <gdcmSequenceOfItems.h>
#include <gdcmTrace.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <opencv2/imgproc.hpp>

#include "image_io.h"
#include "leanseg/error.h"

namespace leanseg::data_detail {
namespace {

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

void read_or_throw(gdcm::ImageReader& reader, const std::string& path, const std::string& role) {
  require(is_file(path), role + " '" + path + "' does not exist");
  gdcm::Trace::WarningOff();  // GDCM prints its guesses to stderr; what leanseg needs it checks itself
  reader.SetFileName(path.c_str());
  require(reader.Read(), role + " '" + path + "' is not a DICOM image GDCM can read (corrupt, truncated or not an image)");
}

// A decimal string (DS) value list "0.2\0.2" → its first value; 0 when absent or not a number.
double first_ds_value(const gdcm::DataSet& ds, const gdcm::Tag& tag) {
  if (!ds.FindDataElement(tag)) return 0;
  const gdcm::DataElement& e = ds.GetDataElement(tag);
  if (e.IsEmpty() || !e.GetByteValue()) return 0;
  const std::string text(e.GetByteValue()->GetPointer(), e.GetByteValue()->GetLength());
  try {
    const double v = std::stod(text.substr(0, text.find('\\')));
    return std::isfinite(v) && v > 0 ? v : 0;
  } catch (const std::exception&) {
    return 0;
  }
}

// Ultrasound regions (0018,6011): PhysicalDeltaX (0018,602C) of the first region in cm
// (PhysicalUnitsXDirection (0018,6024) = 3), in mm; 0 when absent or in other units.
double ultrasound_region_spacing_mm(const gdcm::DataSet& ds) {
  const gdcm::Tag regions(0x0018, 0x6011);
  if (!ds.FindDataElement(regions)) return 0;
  const gdcm::SmartPointer<gdcm::SequenceOfItems> seq = ds.GetDataElement(regions).GetValueAsSQ();
  if (!seq || seq->GetNumberOfItems() == 0) return 0;
  const gdcm::DataSet& item = seq->GetItem(1).GetNestedDataSet();
  gdcm::Attribute<0x0018, 0x6024> units{};
  gdcm::Attribute<0x0018, 0x602c> delta_x{};
  if (!item.FindDataElement(units.GetTag()) || !item.FindDataElement(delta_x.GetTag())) return 0;
  units.SetFromDataElement(item.GetDataElement(units.GetTag()));
  delta_x.SetFromDataElement(item.GetDataElement(delta_x.GetTag()));
  const double cm = delta_x.GetValue();
  return units.GetValue() == 3 && std::isfinite(cm) && cm > 0 ? cm * 10 : 0;
}

}  // namespace

bool is_dicom_path(const std::string& path) {
  const std::string ext = lower_extension(path);
  return ext == ".dcm" || ext == ".dicom";
}

cv::Mat read_dicom_image(const std::string& path, const std::string& role) {
  gdcm::ImageReader reader;
  read_or_throw(reader, path, role);
  const gdcm::Image& image = reader.GetImage();
  const unsigned int* dims = image.GetDimensions();
  const int cols = static_cast<int>(dims[0]), rows = static_cast<int>(dims[1]);
  const unsigned int frames = image.GetNumberOfDimensions() > 2 ? dims[2] : 1;
  require(frames == 1, role + " '" + path + "' has " + std::to_string(frames) +
                           " frames (a cine loop); leanseg reads single-frame images (export the frame you mean)");
  const gdcm::PixelFormat pf = image.GetPixelFormat();
  const int samples = pf.GetSamplesPerPixel();
  int depth = -1;
  switch (pf.GetScalarType()) {
    case gdcm::PixelFormat::UINT8: depth = CV_8U; break;
    case gdcm::PixelFormat::UINT16: depth = CV_16U; break;
    case gdcm::PixelFormat::INT16: depth = CV_16S; break;
    default: break;
  }
  require(depth >= 0 && (samples == 1 || samples == 3),
          role + " '" + path + "' has pixels of type " + pf.GetScalarTypeAsString() + " x " + std::to_string(samples) +
              "; leanseg reads 8- or 16-bit grey or RGB DICOM images");
  const auto pi = image.GetPhotometricInterpretation().GetType();
  const bool grey = pi == gdcm::PhotometricInterpretation::MONOCHROME1 || pi == gdcm::PhotometricInterpretation::MONOCHROME2;
  require((samples == 1 && grey) || (samples == 3 && pi == gdcm::PhotometricInterpretation::RGB),
          role + " '" + path + "' has photometric interpretation " +
              std::string(gdcm::PhotometricInterpretation::GetPIString(pi)) + "; leanseg reads MONOCHROME1/2 and RGB");
  std::vector<char> buffer(image.GetBufferLength());
  require(image.GetBuffer(buffer.data()), role + " '" + path + "': its pixel data cannot be decoded");
  cv::Mat m(rows, cols, CV_MAKETYPE(depth, samples));
  require(buffer.size() >= m.total() * m.elemSize(), role + " '" + path + "': its pixel data is shorter than " +
                                                          std::to_string(cols) + "x" + std::to_string(rows) + " pixels");
  std::copy(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(m.total() * m.elemSize()), m.data);
  if (samples == 3) cv::cvtColor(m, m, cv::COLOR_RGB2BGR);  // OpenCV's order, as imread gives
  if (depth == CV_16S) {  // signed 16-bit (some scanners): the values >= 0 as unsigned
    cv::Mat u;
    m.convertTo(u, CV_16U);
    m = u;
  }
  if (pi == gdcm::PhotometricInterpretation::MONOCHROME1) {  // 0 is white: invert to the usual sense
    const double top = m.depth() == CV_8U ? 255 : (1 << pf.GetBitsStored()) - 1;
    m.convertTo(m, m.depth(), -1, top);
  }
  return m;
}

double dicom_pixel_size_mm(const std::string& path) {
  gdcm::ImageReader reader;
  read_or_throw(reader, path, "DICOM image");
  const gdcm::DataSet& ds = reader.GetFile().GetDataSet();
  if (const double v = first_ds_value(ds, gdcm::Tag(0x0028, 0x0030))) return v;  // Pixel Spacing
  if (const double v = ultrasound_region_spacing_mm(ds)) return v;
  return first_ds_value(ds, gdcm::Tag(0x0018, 0x1164));  // Imager Pixel Spacing
}

}  // namespace leanseg::data_detail
