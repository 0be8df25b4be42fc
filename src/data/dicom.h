// DICOM images (src/data/dicom.cpp, GDCM): read by read_raw_image for .dcm/.dicom files.
#pragma once
#include <opencv2/core.hpp>
#include <string>

namespace leanseg::data_detail {

bool is_dicom_path(const std::string& path);  // by extension: .dcm, .dicom
// One frame's pixels as imread would give them (8/16-bit, grey or BGR; MONOCHROME1 inverted to
// the usual sense). Throws Error naming the file for cine loops, other pixel types and
// photometric interpretations (YBR, palette), and unreadable files.
cv::Mat read_dicom_image(const std::string& path, const std::string& role);
// mm per pixel from the header: Pixel Spacing (0028,0030), else the first ultrasound region's
// PhysicalDeltaX (0018,602C; cm), else Imager Pixel Spacing (0018,1164); 0 when none is given.
double dicom_pixel_size_mm(const std::string& path);

}  // namespace leanseg::data_detail
