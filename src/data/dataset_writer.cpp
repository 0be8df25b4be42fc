// Datasets to disk (`leanseg synth`): the generators' samples in the layouts the readers know,
// so a synthetic set trains, evaluates and predicts like downloaded data.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <sstream>
#include <opencv2/imgproc.hpp>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "leanseg/fs.h"
#include "leanseg/prediction.h"

namespace leanseg {
namespace fs = std::filesystem;
namespace {

cv::Mat to_8bit(const cv::Mat& image01) {
  cv::Mat out;
  image01.convertTo(out, CV_8U, 255.0);  // rounds and saturates
  return out;
}

// The mask's one-pixel outline (its pixels inside the mask): filled again by the HC18 reader,
// it gives back exactly the mask (outline pixels count as head).
cv::Mat outline_of(const cv::Mat& mask) {
  cv::Mat eroded;
  cv::erode(mask, eroded, cv::getStructuringElement(cv::MORPH_RECT, {3, 3}), {-1, -1}, 1, cv::BORDER_CONSTANT, 0);
  return (mask != 0) & (eroded == 0);  // 0/255
}

void write_hc18_layout(const Dataset& d, const std::string& dir) {
  fs::create_directories(dir + "/training_set");
  std::ostringstream csv;
  csv << "filename,pixel size(mm),head circumference (mm)";
  for (size_t i = 0; i < d.samples.size(); ++i) {
    const Sample& s = d.samples[i];
    char name[32];
    std::snprintf(name, sizeof name, "%03zu_HC", i);  // HC18's exam prefix is the group
    write_png(dir + "/training_set/" + name + ".png", to_8bit(s.image));
    write_png(dir + "/training_set/" + name + "_Annotation.png", outline_of(s.mask));
    csv << "\r\n" << name << ".png," << std::setprecision(17) << s.pixel_size_mm << "," << s.hc_mm;
  }
  atomic_write(dir + "/training_set_pixel_size_and_HC.csv", [&](std::ostream& out) { out << csv.str(); });
}

void write_folder_layout(const Dataset& d, const std::string& dir) {
  fs::create_directories(dir + "/images");
  fs::create_directories(dir + "/masks");
  for (const Sample& s : d.samples) {
    write_png(dir + "/images/" + s.id + ".png", to_8bit(s.image));
    write_png(dir + "/masks/" + s.id + ".png", (s.mask != 0));
  }
}

}  // namespace

void write_dataset(const Dataset& d, const std::string& dir) {
  require(!d.samples.empty(), "write_dataset: no samples");
  std::error_code ec;
  require(!fs::exists(dir, ec) || (fs::is_directory(dir, ec) && fs::is_empty(dir, ec)),
          "output folder '" + dir + "' exists and is not empty: give a new folder (datasets are not mixed)");
  for (const Sample& s : d.samples)
    require(s.image.channels() == 1 && !s.mask.empty(), "write_dataset: sample '" + s.id + "' is not a labelled grey image");
  const bool hc18 = std::all_of(d.samples.begin(), d.samples.end(), [](const Sample& s) { return s.pixel_size_mm > 0 && s.hc_mm > 0; });
  if (hc18) write_hc18_layout(d, dir);
  else write_folder_layout(d, dir);
}

}  // namespace leanseg
