#include "image_io.h"

#include "dicom.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "leanseg/data.h"
#include "leanseg/error.h"

namespace leanseg {
namespace data_detail {
namespace fs = std::filesystem;

bool is_tiff_path(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".tif" || ext == ".tiff";
}

namespace {
cv::Mat read_with_opencv(const std::string& path, const std::string& role) {
  cv::Mat raw;
  try {
    raw = cv::imread(path, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    throw Error(role + " '" + path + "' cannot be decoded (corrupt or unsupported file): " + e.what());
  }
  // imread reports truncated or garbled files by returning an empty matrix.
  require(!raw.empty(), role + " '" + path + "' cannot be decoded (corrupt, truncated or unsupported file)");
  return raw;
}
}  // namespace

cv::Mat read_raw_image(const std::string& path, const std::string& role, const ImageReadOptions& read) {
  require(is_file(path), role + " '" + path + "' does not exist");
  if (is_tiff_path(path)) return read_tiff_image(path, role, read, [&] { return read_with_opencv(path, role); });
  require(read.page <= 0, role + " '" + path + "' has one page; --page " + std::to_string(read.page) +
                              " applies to multi-page TIFFs");
  if (is_dicom_path(path)) return pick_channel(read_dicom_image(path, role), read.channel, true, path);
  return pick_channel(read_with_opencv(path, role), read.channel, true, path);
}

cv::Mat float_to_unit(const cv::Mat& plane, const std::vector<double>& range, const std::string& path) {
  double lo = 0, hi = 0;
  if (range.size() == 2) {
    lo = range[0], hi = range[1];
  } else {
    cv::minMaxLoc(plane, &lo, &hi);
    char note[160];
    std::snprintf(note, sizeof note, "%.6g..%.6g", lo, hi);
    warn("image '" + path + "' has float pixels; mapped by its own range " + note +
         " to [0, 1] (--intensity-range LO,HI sets a fixed one)");
  }
  cv::Mat out;
  plane.convertTo(out, CV_32F, hi > lo ? 1.0 / (hi - lo) : 0.0, hi > lo ? -lo / (hi - lo) : 0.0);
  cv::min(out, 1.0, out);
  cv::max(out, 0.0, out);
  return out;
}

cv::Mat raw_channel(const cv::Mat& raw, const std::string& channel, const std::string& path) {
  const int n = raw.channels();
  require(n >= 1 && n <= 4, "image '" + path + "' has " + std::to_string(n) + " channels; expected 1 or 2 (grey, "
                            "grey + alpha), 3 or 4 (colour, colour + alpha)");
  if (n <= 2) {
    require(channel == "gray" || channel == "w1" || channel == "w2" || channel == "r" || channel == "g" ||
                channel == "b",
            "unknown input channel '" + channel + "' for '" + path + "' (expected gray, w1, w2, r, g or b)");
    if (n == 1) return raw;
    cv::Mat grey;  // grey + alpha: the alpha plane carries no intensity
    cv::extractChannel(raw, grey, 0);
    return grey;
  }
  if (channel == "gray") {
    cv::Mat grey;
    cv::cvtColor(raw, grey, n == 4 ? cv::COLOR_BGRA2GRAY : cv::COLOR_BGR2GRAY);
    return grey;
  }
  // OpenCV stores colour as B, G, R (, A).
  int index = -1;
  if (channel == "b") index = 0;
  if (channel == "g") index = 1;
  if (channel == "r") index = 2;
  require(index >= 0, "channel '" + channel + "' needs a single-channel (grey) image, but '" + path +
                          "' is a colour image; use gray, r, g or b");
  cv::Mat out;
  cv::extractChannel(raw, out, index);
  return out;
}

cv::Mat scale_to_unit(const cv::Mat& raw, double max_value) {
  cv::Mat out;
  raw.convertTo(out, CV_MAKETYPE(CV_32F, raw.channels()), 1.0 / max_value);
  cv::min(out, 1.0, out);
  cv::max(out, 0.0, out);
  return out;
}

namespace {
const char* depth_name(int depth) {
  switch (depth) {
    case CV_8S: return "8-bit signed integer";
    case CV_16S: return "16-bit signed integer";
    case CV_32S: return "32-bit signed integer";
    case CV_32F: return "32-bit float";
    case CV_64F: return "64-bit float";
    default: return "unsupported";
  }
}
}  // namespace

double type_max_value(const cv::Mat& raw, const std::string& path) {
  if (raw.depth() == CV_8U) return 255;
  if (raw.depth() == CV_16U) return 65535;
  throw Error("image '" + path + "' has " + depth_name(raw.depth()) +
              " pixels; leanseg reads 8- and 16-bit unsigned integer images and 32-bit float TIFFs (convert it, "
              "e.g. to 16-bit)");
}

double unit_scale_max(const cv::Mat& raw, double max_value, const std::string& path) {
  const double file_max = type_max_value(raw, path);
  const double model_file_max = max_value <= 255 ? 255 : 65535;
  return file_max == model_file_max ? max_value : file_max;
}

cv::Mat foreground_of(const cv::Mat& raw) {
  const int n = raw.channels();
  const int colour_channels = (n == 2 || n == 4) ? n - 1 : n;  // the last plane of 2 or 4 is alpha
  cv::Mat any = cv::Mat::zeros(raw.size(), CV_8UC1);
  for (int c = 0; c < colour_channels; ++c) {
    cv::Mat plane;
    cv::extractChannel(raw, plane, c);
    any |= (plane != 0);
  }
  return any / 255;  // comparisons give 0/255
}

std::vector<int> mask_values(const cv::Mat& raw, size_t cap) {
  const int n = raw.channels(), colour_channels = (n == 2 || n == 4) ? n - 1 : n;
  std::vector<int> values;
  for (int c = 0; c < colour_channels && values.size() < cap; ++c) {
    cv::Mat plane;
    cv::extractChannel(raw, plane, c);
    plane.convertTo(plane, CV_32S);
    for (auto it = plane.begin<int>(); it != plane.end<int>() && values.size() < cap; ++it)
      if (std::find(values.begin(), values.end(), *it) == values.end()) values.push_back(*it);
  }
  std::sort(values.begin(), values.end());
  return values;
}

std::string values_text(const std::vector<int>& values) {
  std::string shown;
  for (size_t i = 0; i < values.size() && i < 8; ++i) shown += (i ? ", " : "") + std::to_string(values[i]);
  return shown + (values.size() > 8 ? ", ..." : "");
}

cv::Mat label_mask(const cv::Mat& raw, int num_classes, const std::string& path) {
  type_max_value(raw, path);  // 8- or 16-bit
  require(raw.channels() == 1, "mask '" + path + "' has " + std::to_string(raw.channels()) +
                                   " channels; label masks of a " + std::to_string(num_classes) +
                                   "-class model are single-channel images of class indices 0.." +
                                   std::to_string(num_classes - 1));
  double highest = 0;
  cv::minMaxLoc(raw, nullptr, &highest);
  if (highest < num_classes) {
    cv::Mat out;
    raw.convertTo(out, CV_8UC1);
    return out;
  }
  const std::vector<int> values = mask_values(raw, 9);
  throw Error("mask '" + path + "' holds the values " + values_text(values) + "; a " + std::to_string(num_classes) +
              "-class model takes labels 0.." + std::to_string(num_classes - 1) +
              " (set the number of classes with --num-classes)");
}

cv::Mat binary_foreground(const cv::Mat& raw, const std::string& path) {
  type_max_value(raw, path);  // 8- or 16-bit: masks have no float or signed values
  const std::vector<int> values = mask_values(raw, 9);
  const size_t foreground_values = values.size() - (values.front() == 0 ? 1 : 0);
  if (foreground_values > 1)
    throw Error("mask '" + path + "' is not binary: it holds the values " + values_text(values) +
                "; expected 0 and one foreground value (0/1 or 0/255), or label masks 0..K-1 with --num-classes K");
  return foreground_of(raw);
}

std::vector<std::string> list_files(const std::string& dir, const std::vector<std::string>& extensions) {
  require(is_directory(dir), "directory '" + dir + "' does not exist");
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (std::find(extensions.begin(), extensions.end(), ext) != extensions.end())
      files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string file_stem(const std::string& path) { return fs::path(path).stem().string(); }
std::string file_name(const std::string& path) { return fs::path(path).filename().string(); }

bool is_directory(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec);
}

bool is_file(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

void warn(const std::string& message) { std::cerr << "leanseg: warning: " + message + "\n" << std::flush; }

}  // namespace data_detail

cv::Mat read_input_image(const std::vector<std::string>& paths, const std::vector<std::string>& channels,
                         const std::string& intensity, double max_value, const ImageReadOptions& read) {
  using namespace data_detail;
  require(!paths.empty(), "read_input_image: no input file given");
  require(!channels.empty(), "read_input_image: no input channels given");
  require(paths.size() == 1 || paths.size() == channels.size(),
          "read_input_image: got " + std::to_string(paths.size()) + " files for " +
              std::to_string(channels.size()) + " channels; give one file, or one file per channel");
  require(intensity == "max" || intensity == "minmax",
          "read_input_image: unknown intensity scaling '" + intensity + "' (expected max or minmax)");
  require(intensity != "max" || max_value > 0,
          "read_input_image: max_value must be positive, got " + std::to_string(max_value));

  std::vector<cv::Mat> raws;
  for (const auto& p : paths) raws.push_back(read_raw_image(p, "input image", read));
  std::vector<cv::Mat> planes;
  for (size_t c = 0; c < channels.size(); ++c) {
    const size_t source = paths.size() == 1 ? 0 : c;
    cv::Mat plane = raw_channel(raws[source], channels[c], paths[source]);
    require(plane.size() == raws[0].size(), "input image '" + paths[source] + "' is " +
                                                std::to_string(plane.cols) + "x" + std::to_string(plane.rows) +
                                                " but '" + paths[0] + "' is " + std::to_string(raws[0].cols) +
                                                "x" + std::to_string(raws[0].rows));
    if (plane.depth() == CV_32F && intensity == "max") {
      planes.push_back(float_to_unit(plane, read.intensity_range, paths[source]));
    } else if (intensity == "max") {
      planes.push_back(scale_to_unit(plane, unit_scale_max(plane, max_value, paths[source])));
    } else {
      // Each channel comes from its own source (e.g. two microscope channels), so each is
      // stretched on its own; a constant channel carries no information and becomes 0.
      double lo = 0, hi = 0;
      cv::minMaxLoc(plane, &lo, &hi);
      cv::Mat scaled;
      plane.convertTo(scaled, CV_32F, hi > lo ? 1.0 / (hi - lo) : 0.0, hi > lo ? -lo / (hi - lo) : 0.0);
      planes.push_back(scaled);
    }
  }
  cv::Mat out;
  cv::merge(planes, out);
  return out;
}

std::vector<double> parse_intensity_range(const std::string& text, const std::string& option) {
  const size_t comma = text.find(',');
  try {
    size_t used_lo = 0, used_hi = 0;
    const std::string lo_text = text.substr(0, comma), hi_text = comma == std::string::npos ? "" : text.substr(comma + 1);
    const double lo = std::stod(lo_text, &used_lo), hi = std::stod(hi_text, &used_hi);
    if (used_lo == lo_text.size() && used_hi == hi_text.size() && std::isfinite(lo) && std::isfinite(hi) && lo < hi)
      return {lo, hi};
  } catch (const std::exception&) {
  }
  throw Error(option + ": expected LO,HI with LO < HI (the float values that map to 0 and 1), got '" + text + "'");
}

}  // namespace leanseg
