// The pixel size an image file records about itself: DICOM's pixel spacing (dicom.cpp) and
// OME-TIFF's PhysicalSizeX (the OME-XML in the first page's ImageDescription, read with libtiff).
#include <tiffio.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <regex>

#include "dicom.h"
#include "image_io.h"
#include "leanseg/data.h"
#include "leanseg/error.h"

namespace leanseg {
namespace {

// PhysicalSizeX of the OME-XML's Pixels element, in mm (its unit attribute, default µm); 0
// when the description is no OME-XML or has no size.
double ome_physical_size_x_mm(const std::string& xml) {
  std::smatch pixels;
  if (!std::regex_search(xml, pixels, std::regex("<(?:\\w+:)?Pixels\\s[^>]*>"))) return 0;
  const std::string element = pixels.str();
  std::smatch size, unit;
  if (!std::regex_search(element, size, std::regex("PhysicalSizeX\\s*=\\s*\"([^\"]+)\""))) return 0;
  double value = 0;
  try {
    value = std::stod(size[1].str());
  } catch (const std::exception&) {
    return 0;
  }
  if (!std::isfinite(value) || value <= 0) return 0;
  std::string u = "\xC2\xB5m";  // µm, OME's default
  if (std::regex_search(element, unit, std::regex("PhysicalSizeXUnit\\s*=\\s*\"([^\"]+)\""))) u = unit[1].str();
  if (u == "\xC2\xB5m" || u == "um" || u == "\xCE\xBCm") return value * 1e-3;
  if (u == "nm") return value * 1e-6;
  if (u == "mm") return value;
  if (u == "cm") return value * 10;
  if (u == "m") return value * 1e3;
  return 0;  // pixels, reference frames, ...: no physical size
}

double tiff_pixel_size_mm(const std::string& path) {
  TIFFSetWarningHandler(nullptr);  // libtiff's notes on private tags are no errors here
  std::unique_ptr<TIFF, void (*)(TIFF*)> tif(TIFFOpen(path.c_str(), "r"), [](TIFF* t) {
    if (t) TIFFClose(t);
  });
  require(tif != nullptr, "TIFF image '" + path + "' cannot be opened (corrupt or not a TIFF)");
  char* description = nullptr;
  if (!TIFFGetField(tif.get(), TIFFTAG_IMAGEDESCRIPTION, &description) || description == nullptr) return 0;
  return ome_physical_size_x_mm(description);
}

}  // namespace

double image_pixel_size_mm(const std::string& path) {
  if (data_detail::is_dicom_path(path)) return data_detail::dicom_pixel_size_mm(path);
  if (data_detail::is_tiff_path(path)) return tiff_pixel_size_mm(path);  // OME-XML sits in the first page
  return 0;
}

}  // namespace leanseg
