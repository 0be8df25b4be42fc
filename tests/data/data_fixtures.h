// Small on-disk datasets for the data-layer tests: fake ones drawn with OpenCV (always
// available) and trimmed copies of the real data in ../shared/data (when present).
#pragma once
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "test_util.h"

namespace leanseg::test {

inline std::string real_hc18_dir() { return shared_dir() + "/data/hc18"; }
inline std::string real_bbbc010_dir() { return shared_dir() + "/data/bbbc010"; }
inline bool have_dir(const std::string& d) { return std::filesystem::is_directory(d); }

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Keeps the first `keep` bytes of a file, as an interrupted download would.
inline void truncate_file(const std::string& path, size_t keep) {
  std::string bytes = read_text(path);
  write_text(path, bytes.substr(0, keep));
}

// One fake HC18 image: an ellipse outline (255 on 0, 2 px wide, like the real annotations).
struct FakeHead {
  std::string stem;  // "001_HC"
  int width = 120, height = 90;
  cv::Point2f centre{60, 45};
  cv::Size2f axes{70, 50};  // full axes, as in cv::RotatedRect
  float angle = 20;
  double pixel_size_mm = 0.1, hc_mm = 50;
};

inline void write_fake_head(const std::string& dir, const FakeHead& h) {
  cv::Mat image(h.height, h.width, CV_8UC1, cv::Scalar(40));
  cv::Mat outline = cv::Mat::zeros(h.height, h.width, CV_8UC1);
  const cv::RotatedRect box(h.centre, h.axes, h.angle);
  cv::ellipse(image, box, cv::Scalar(200), 3);
  cv::ellipse(outline, box, cv::Scalar(255), 2, cv::LINE_8);
  cv::imwrite(dir + "/training_set/" + h.stem + ".png", image);
  cv::imwrite(dir + "/training_set/" + h.stem + "_Annotation.png", outline);
}

// The CSV in the original format: CRLF line ends, no newline after the last row.
inline std::string hc18_csv(const std::vector<FakeHead>& heads) {
  std::string csv = "filename,pixel size(mm),head circumference (mm)";
  for (const auto& h : heads)
    csv += "\r\n" + h.stem + ".png," + std::to_string(h.pixel_size_mm) + "," + std::to_string(h.hc_mm);
  return csv;
}

inline void make_fake_hc18(const std::string& dir, const std::vector<FakeHead>& heads) {
  std::filesystem::create_directories(dir + "/training_set");
  for (const auto& h : heads) write_fake_head(dir, h);
  write_text(dir + "/training_set_pixel_size_and_HC.csv", hc18_csv(heads));
}

inline std::vector<FakeHead> three_fake_heads() {
  FakeHead a{"001_HC"}, b{"001_2HC"}, c{"002_HC"};
  b.pixel_size_mm = 0.2;
  c.width = 100;
  c.height = 80;
  c.centre = {50, 40};
  c.axes = {60, 44};
  c.pixel_size_mm = 0.15;
  c.hc_mm = 70;
  return {a, b, c};
}

// Copies the named HC18 images, their annotations and their CSV rows (keeping the original
// line format) from the real data into `dir`.
inline void copy_real_hc18(const std::string& dir, const std::vector<std::string>& stems) {
  namespace fs = std::filesystem;
  fs::create_directories(dir + "/training_set");
  const std::string src = real_hc18_dir();
  const std::string csv = read_text(src + "/training_set_pixel_size_and_HC.csv");
  std::string out = csv.substr(0, csv.find("\r\n"));  // header
  for (const auto& stem : stems) {
    for (const std::string suffix : {".png", "_Annotation.png"})
      fs::copy_file(src + "/training_set/" + stem + suffix, dir + "/training_set/" + stem + suffix);
    const size_t row = csv.find("\n" + stem + ".png,");
    const size_t end = csv.find("\r\n", row + 1);
    out += "\r\n" + csv.substr(row + 1, end == std::string::npos ? std::string::npos : end - row - 1);
  }
  write_text(dir + "/training_set_pixel_size_and_HC.csv", out);
}

// A fake BBBC010 well: 16-bit TIFFs with 12-bit values and an RGBA mask.
inline void write_fake_well(const std::string& dir, const std::string& well, const std::vector<std::string>& channels,
                            bool with_mask, int width = 64, int height = 48) {
  namespace fs = std::filesystem;
  fs::create_directories(dir + "/BBBC010_v2_images");
  fs::create_directories(dir + "/BBBC010_v1_foreground");
  for (const auto& c : channels) {
    cv::Mat image(height, width, CV_16UC1, cv::Scalar(c == "w1" ? 300 : 3000));
    cv::line(image, {5, 5}, {40, 30}, cv::Scalar(c == "w1" ? 1200 : 1000), 3);
    cv::imwrite(dir + "/BBBC010_v2_images/1649_1109_0003_Amp5-1_B_20070424_" + well + "_" + c +
                    "_0A1B2C3D-0000-4E7E-8040-" + (c == "w1" ? "D1BB2D7E73EA" : "5BC479534681") + ".tif",
                image);
  }
  if (with_mask) {
    cv::Mat mask(height, width, CV_8UC4, cv::Scalar(0, 0, 0, 255));  // opaque background
    cv::line(mask, {5, 5}, {40, 30}, cv::Scalar(255, 255, 255, 255), 3);
    mask.at<cv::Vec4b>(40, 60) = cv::Vec4b(0, 0, 255, 255);  // red only: still worm
    cv::imwrite(dir + "/BBBC010_v1_foreground/" + well + "_binary.png", mask);
  }
}

inline std::string find_file_containing(const std::string& dir, const std::string& part) {
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().find(part) != std::string::npos) return e.path().string();
  return "";
}

}  // namespace leanseg::test
