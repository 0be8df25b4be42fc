// libFuzzer: the HC18 reader with the input as its CSV (training_set_pixel_size_and_HC.csv),
// over a fixed one-image training set written at start-up (an ellipse outline): line splitting
// (CRLF/LF/CR, BOM), columns, numbers, duplicate rows, then the sample reader.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

#include "leanseg/data.h"
#include "leanseg/error.h"

namespace {
std::string root;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  root = (std::filesystem::temp_directory_path() / ("leanseg_fuzz_hc18." + std::to_string(getpid()))).string();
  std::filesystem::create_directories(root + "/training_set");
  cv::Mat image(48, 64, CV_8UC1, cv::Scalar(40)), outline = cv::Mat::zeros(48, 64, CV_8UC1);
  cv::ellipse(image, {32, 24}, {20, 14}, 0, 0, 360, cv::Scalar(200), cv::FILLED);
  cv::ellipse(outline, {32, 24}, {20, 14}, 0, 0, 360, cv::Scalar(255), 1);
  cv::imwrite(root + "/training_set/001_HC.png", image);
  cv::imwrite(root + "/training_set/001_HC_Annotation.png", outline);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::ofstream out(root + "/training_set_pixel_size_and_HC.csv", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const leanseg::Dataset d = leanseg::read_hc18(root);
    for (const auto& s : d.samples)
      if (!(s.pixel_size_mm > 0) || !(s.hc_mm > 0)) __builtin_trap();  // the reader promises positive values
  } catch (const leanseg::Error&) {
  }
  return 0;
}
