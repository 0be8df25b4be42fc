// libFuzzer: image decoding as prediction and the dataset readers do it (one loader:
// read_input_image, and binary_foreground for masks) on arbitrary file contents. OpenCV picks
// the codec from the bytes (PNG, TIFF, JPEG, BMP, ...). Decoded sizes are capped
// (OPENCV_IO_MAX_IMAGE_PIXELS) so that a claimed 2^30-pixel image is an error, not an OOM report.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "data/image_io.h"
#include "leanseg/data.h"
#include "leanseg/error.h"

namespace {
std::string path;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("OPENCV_IO_MAX_IMAGE_PIXELS", "4194304", 1);
  path = (std::filesystem::temp_directory_path() / ("leanseg_fuzz_image." + std::to_string(getpid()) + ".img")).string();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const cv::Mat m = leanseg::read_input_image({path}, {"gray"}, "max", 255.0);
    if (m.empty() || m.type() != CV_32FC1) __builtin_trap();
  } catch (const leanseg::Error&) {
  }
  try {
    (void)leanseg::read_input_image({path}, {"g"}, "minmax", 65535.0);
  } catch (const leanseg::Error&) {
  }
  try {
    (void)leanseg::data_detail::binary_foreground(leanseg::data_detail::read_raw_image(path, "mask"), path);
  } catch (const leanseg::Error&) {
  }
  return 0;
}
