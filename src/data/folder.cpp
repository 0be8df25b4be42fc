// Plain-folder reader: DIR/images/<stem>.<ext> with DIR/masks/<stem>.png.
#include <map>

#include "image_io.h"
#include "leanseg/data.h"
#include "leanseg/error.h"
#include "parallel.h"

namespace leanseg {
namespace {
using namespace data_detail;

const std::vector<std::string> kImageExtensions = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".dcm", ".dicom"};

std::string size_text(const cv::Mat& m) { return std::to_string(m.cols) + "x" + std::to_string(m.rows); }

// Channels of the whole dataset follow its first image: grey files give {"gray"}, colour files
// {"r","g","b"}; other files are converted the same way read_input_image does at inference.
std::vector<std::string> channels_for(const cv::Mat& first) {
  if (first.channels() == 1) return {"gray"};
  return {"r", "g", "b"};
}

struct RawPair {
  cv::Mat image, mask;
};

RawPair read_pair(const std::string& image_path, const std::string& mask_path) {
  RawPair p;
  p.image = read_raw_image(image_path, "image");
  require(is_file(mask_path), "mask '" + mask_path + "' is missing for image '" + image_path + "'");
  p.mask = read_raw_image(mask_path, "mask");
  require(p.mask.size() == p.image.size(), "mask '" + mask_path + "' is " + size_text(p.mask) +
                                               " but its image '" + image_path + "' is " + size_text(p.image));
  return p;
}

}  // namespace

Dataset read_folder(const std::string& dir) {
  const std::string image_dir = dir + "/images", mask_dir = dir + "/masks";
  require(is_directory(image_dir), "image folder '" + image_dir + "' does not exist");
  require(is_directory(mask_dir), "mask folder '" + mask_dir + "' does not exist");
  const auto image_files = list_files(image_dir, kImageExtensions);
  require(!image_files.empty(), "image folder '" + image_dir + "' contains no png, tif, jpg, bmp or dcm images");

  std::map<std::string, std::string> by_stem;
  for (const auto& f : image_files) {
    const auto [it, added] = by_stem.emplace(file_stem(f), f);
    require(added, "images '" + it->second + "' and '" + f + "' have the same name stem; their masks would clash");
  }
  for (const auto& m : list_files(mask_dir, {".png"}))
    if (!by_stem.count(file_stem(m))) warn("mask '" + m + "' has no image in '" + image_dir + "'; ignored");

  std::vector<RawPair> raws(image_files.size());
  parallel_for_index(image_files.size(), [&](size_t i) {
    raws[i] = read_pair(image_files[i], mask_dir + "/" + file_stem(image_files[i]) + ".png");
  });

  Dataset d;
  d.kind = "folder";
  d.channels = channels_for(raws[0].image);
  d.max_value = type_max_value(raws[0].image, image_files[0]);
  bool any_foreground = false;
  for (size_t i = 0; i < raws.size(); ++i) {
    const std::string& path = image_files[i];
    require(type_max_value(raws[i].image, path) == d.max_value,
            "image '" + path + "' has a different bit depth from '" + image_files[0] +
                "'; all images of a folder dataset must be 8-bit or all 16-bit");
    std::vector<cv::Mat> planes;
    for (const auto& c : d.channels) planes.push_back(scale_to_unit(raw_channel(raws[i].image, c, path), d.max_value));
    Sample s;
    s.id = s.group = file_stem(path);
    s.image_path = path;
    s.pixel_size_mm = image_pixel_size_mm(path);  // DICOM, OME-TIFF: distances in mm
    cv::merge(planes, s.image);
    // Masks may be 0/1, 0/255 or colour, with one foreground value; an all-background mask is
    // a legitimate negative example.
    s.mask = binary_foreground(raws[i].mask, mask_dir + "/" + file_stem(path) + ".png");
    any_foreground = any_foreground || cv::countNonZero(s.mask) > 0;
    raws[i] = {};  // free the raw copy early
    d.samples.push_back(std::move(s));
  }
  require(any_foreground, "every mask in '" + mask_dir + "' is empty; masks must be non-zero on the objects");
  return d;
}

}  // namespace leanseg
