// BBBC010 reader: one or two 16-bit microscope channels per well plus the well's foreground mask.
#include <map>
#include <regex>
#include <set>

#include "image_io.h"
#include "leanseg/data.h"
#include "leanseg/error.h"
#include "parallel.h"

namespace leanseg {
namespace {
using namespace data_detail;

const char* const kImageFolder = "BBBC010_v2_images";
const char* const kMaskFolder = "BBBC010_v1_foreground";
constexpr double kTwelveBitMax = 4095;  // the camera's 12-bit range inside 16-bit files

using ChannelFiles = std::map<std::string, std::string>;  // "w1"/"w2" -> path

// Groups the image files by well from names like ..._<WELL>_<w1|w2>_<GUID>.tif.
std::map<std::string, ChannelFiles> images_by_well(const std::string& image_dir) {
  static const std::regex name_pattern(R"(.*_([A-Za-z][0-9]+)_(w[0-9]+)_[^_]+\.tiff?)", std::regex::icase);
  std::map<std::string, ChannelFiles> wells;
  for (const auto& path : list_files(image_dir, {".tif", ".tiff"})) {
    std::smatch m;
    const std::string name = file_name(path);
    if (!std::regex_match(name, m, name_pattern)) {
      warn("BBBC010 file '" + path + "' does not look like ..._<WELL>_<w1|w2>_<GUID>.tif; ignored");
      continue;
    }
    const std::string well = m[1], channel = m[2];
    const bool added = wells[well].emplace(channel, path).second;
    require(added, "BBBC010 folder '" + image_dir + "' has two " + channel + " images for well " + well +
                       ": '" + wells[well][channel] + "' and '" + path + "'");
  }
  return wells;
}

void check_channels(const std::vector<std::string>& channels) {
  require(!channels.empty(), "BBBC010: no channels requested (choose w1, w2 or both)");
  std::set<std::string> seen;
  for (const auto& c : channels) {
    require(c == "w1" || c == "w2", "BBBC010: unknown channel '" + c + "' (expected w1 or w2)");
    require(seen.insert(c).second, "BBBC010: channel '" + c + "' requested twice");
  }
}

std::string size_text(const cv::Mat& m) { return std::to_string(m.cols) + "x" + std::to_string(m.rows); }

Sample read_well(const std::string& well, const ChannelFiles& files, const std::vector<std::string>& channels,
                 const std::string& mask_path) {
  Sample s;
  s.id = well;
  s.group = well;
  s.image_path = files.at(channels.front());
  std::vector<cv::Mat> planes;
  for (const auto& c : channels) {
    const std::string& path = files.at(c);
    const cv::Mat raw = read_raw_image(path, "BBBC010 image");
    require(raw.type() == CV_16UC1, "BBBC010 image '" + path + "' is not a 16-bit single-channel TIFF");
    if (!planes.empty())
      require(raw.size() == planes[0].size(), "BBBC010 image '" + path + "' is " + size_text(raw) +
                                                  " but the other channel of well " + well + " is " +
                                                  size_text(planes[0]));
    planes.push_back(scale_to_unit(raw, kTwelveBitMax));
  }
  cv::merge(planes, s.image);

  const cv::Mat raw_mask = read_raw_image(mask_path, "BBBC010 mask");
  require(raw_mask.depth() == CV_8U, "BBBC010 mask '" + mask_path + "' is not an 8-bit PNG");
  require(raw_mask.size() == s.image.size(), "BBBC010 mask '" + mask_path + "' is " + size_text(raw_mask) +
                                                 " but its image is " + size_text(s.image));
  s.mask = foreground_of(raw_mask);
  require(cv::countNonZero(s.mask) > 0, "BBBC010 mask '" + mask_path + "' is empty (no worm pixels)");
  return s;
}

}  // namespace

Dataset read_bbbc010(const std::string& dir, const std::vector<std::string>& channels) {
  check_channels(channels);
  const std::string image_dir = dir + "/" + kImageFolder;
  const std::string mask_dir = dir + "/" + kMaskFolder;
  require(is_directory(image_dir), "BBBC010 folder '" + image_dir + "' does not exist");
  require(is_directory(mask_dir), "BBBC010 mask folder '" + mask_dir + "' does not exist");
  const auto wells = images_by_well(image_dir);

  // Wells without a requested channel or without a mask cannot be used; say so once each.
  std::vector<std::pair<std::string, std::string>> usable;  // well, mask path
  for (const auto& [well, files] : wells) {
    std::string missing;
    for (const auto& c : channels)
      if (!files.count(c)) missing += (missing.empty() ? "" : ", ") + c;
    const std::string mask_path = mask_dir + "/" + well + "_binary.png";
    if (!missing.empty())
      warn("BBBC010: skipping well " + well + ": no " + missing + " image in '" + image_dir + "'");
    else if (!is_file(mask_path))
      warn("BBBC010: skipping well " + well + ": mask '" + mask_path + "' is missing");
    else
      usable.emplace_back(well, mask_path);
  }
  require(!usable.empty(), "BBBC010 folder '" + dir + "' has no well with both the requested channel images and a mask");

  Dataset d;
  d.kind = "bbbc010";
  d.channels = channels;
  d.max_value = kTwelveBitMax;
  d.samples.resize(usable.size());
  parallel_for_index(usable.size(), [&](size_t i) {
    const auto& [well, mask_path] = usable[i];
    d.samples[i] = read_well(well, wells.at(well), channels, mask_path);
  });
  return d;
}

}  // namespace leanseg
