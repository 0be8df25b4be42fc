// Plain-folder reader: DIR/images/<stem>.<ext> with DIR/masks/<stem>.<png|tif|tiff>.
#include <map>
#include <set>

#include "image_io.h"
#include "leanseg/data.h"
#include "leanseg/error.h"
#include "leanseg/limits.h"
#include "parallel.h"

namespace leanseg {
namespace {
using namespace data_detail;

const std::vector<std::string> kImageExtensions = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".dcm", ".dicom"};
const std::vector<std::string> kMaskExtensions = {".png", ".tif", ".tiff"};  // lossless, 8- or 16-bit

// masks/<stem>.png, else .tif or .tiff when one exists; the .png name (for the "missing" message)
// when none does.
std::string mask_path_for(const std::string& mask_dir, const std::string& stem) {
  for (const auto& ext : kMaskExtensions)
    if (is_file(mask_dir + "/" + stem + ext)) return mask_dir + "/" + stem + ext;
  return mask_dir + "/" + stem + ".png";
}

std::string parent_dir(const std::string& path) { return path.substr(0, path.find_last_of('/')); }

// The number of classes the masks hold (background included) when none was given: binary (2)
// when every mask has at most one foreground value and those values are not all class indices
// (0/1 and 0/255 masks may be mixed); label masks 0..K-1 otherwise (K = the largest value + 1).
// Throws naming a mask whose values are neither.
int infer_num_classes(const std::vector<cv::Mat>& masks, const std::vector<std::string>& paths) {
  std::set<int> foreground;
  bool one_foreground_each = true;
  for (size_t i = 0; i < masks.size(); ++i) {
    const auto values = mask_values(masks[i], kMaxClasses + 1);
    const size_t fg = values.size() - (values.front() == 0 ? 1 : 0);
    one_foreground_each = one_foreground_each && fg <= 1;
    for (int v : values)
      if (v != 0) foreground.insert(v);
  }
  if (foreground.size() <= 1) return 2;
  const int highest = *foreground.rbegin();
  if (one_foreground_each && highest >= kMaxClasses) return 2;
  if (highest < kMaxClasses) return highest + 1;
  for (size_t i = 0; i < masks.size(); ++i) {  // name the first mask that is neither binary nor labels
    const auto values = mask_values(masks[i], kMaxClasses + 1);
    if (values.size() > 2 && values.back() >= kMaxClasses)
      throw Error("mask '" + paths[i] + "' holds the values " + values_text(values) +
                  ": neither binary (0 and one foreground value) nor class labels 0..K-1 (K <= " +
                  std::to_string(kMaxClasses) + ")");
  }
  throw Error("the masks in '" + parent_dir(paths[0]) + "' mix foreground values " +
              values_text(std::vector<int>(foreground.begin(), foreground.end())) +
              ": neither binary (0 and one foreground value) nor class labels 0..K-1 (K <= " +
              std::to_string(kMaxClasses) + ")");
}

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

RawPair read_pair(const std::string& image_path, const std::string& mask_path, const ImageReadOptions& read) {
  RawPair p;
  p.image = read_raw_image(image_path, "image", read);
  require(is_file(mask_path), "mask '" + mask_path + "' is missing for image '" + image_path + "'");
  // A mask is one plane: the image's page when the mask is a stack too, else its only page.
  ImageReadOptions mask_read;
  if (is_tiff_path(mask_path) && tiff_page_count(mask_path, "mask") > 1) mask_read.page = read.page;
  p.mask = read_raw_image(mask_path, "mask", mask_read);
  require(p.mask.size() == p.image.size(), "mask '" + mask_path + "' is " + size_text(p.mask) +
                                               " but its image '" + image_path + "' is " + size_text(p.image));
  return p;
}

// 255 for 8-bit, 65535 for 16-bit, 1 for float images (mapped by float_to_unit).
double folder_max_value(const cv::Mat& raw, const std::string& path) {
  return raw.depth() == CV_32F ? 1.0 : type_max_value(raw, path);
}

}  // namespace

Dataset read_folder(const std::string& dir, int num_classes, const ImageReadOptions& read) {
  require(num_classes == 0 || (num_classes >= 2 && num_classes <= kMaxClasses),
          "number of classes must be in [2, " + std::to_string(kMaxClasses) + "] (0: from the masks), got " +
              std::to_string(num_classes));
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
  for (const auto& m : list_files(mask_dir, kMaskExtensions))
    if (!by_stem.count(file_stem(m))) warn("mask '" + m + "' has no image in '" + image_dir + "'; ignored");

  std::vector<RawPair> raws(image_files.size());
  parallel_for_index(image_files.size(), [&](size_t i) {
    raws[i] = read_pair(image_files[i], mask_path_for(mask_dir, file_stem(image_files[i])), read);
  });
  std::vector<std::string> mask_paths;
  for (const auto& f : image_files) mask_paths.push_back(mask_path_for(mask_dir, file_stem(f)));
  if (num_classes == 0) {
    std::vector<cv::Mat> masks;
    for (const auto& r : raws) masks.push_back(r.mask);
    num_classes = infer_num_classes(masks, mask_paths);
  }

  Dataset d;
  d.kind = "folder";
  d.num_classes = num_classes;
  d.channels = channels_for(raws[0].image);
  d.max_value = folder_max_value(raws[0].image, image_files[0]);
  const int depth = raws[0].image.depth();  // captured: each raw image is freed once converted
  if (depth == CV_32F) d.intensity_range = read.intensity_range;
  bool any_foreground = false;
  for (size_t i = 0; i < raws.size(); ++i) {
    const std::string& path = image_files[i];
    require(raws[i].image.depth() == depth && folder_max_value(raws[i].image, path) == d.max_value,
            "image '" + path + "' has a different bit depth from '" + image_files[0] +
                "'; all images of a folder dataset must be 8-bit, all 16-bit or all 32-bit float");
    std::vector<cv::Mat> planes;
    for (const auto& c : d.channels) {
      const cv::Mat plane = raw_channel(raws[i].image, c, path);
      planes.push_back(plane.depth() == CV_32F ? float_to_unit(plane, read.intensity_range, path)
                                               : scale_to_unit(plane, d.max_value));
    }
    Sample s;
    s.id = s.group = file_stem(path);
    s.image_path = path;
    s.pixel_size_mm = image_pixel_size_mm(path);  // DICOM, OME-TIFF: distances in mm
    cv::merge(planes, s.image);
    // Binary masks may be 0/1, 0/255 or colour, with one foreground value; label masks hold
    // class indices. An all-background mask is a legitimate negative example.
    s.mask = num_classes == 2 ? binary_foreground(raws[i].mask, mask_paths[i])
                              : label_mask(raws[i].mask, num_classes, mask_paths[i]);
    any_foreground = any_foreground || cv::countNonZero(s.mask) > 0;
    raws[i] = {};  // free the raw copy early
    d.samples.push_back(std::move(s));
  }
  require(any_foreground, "every mask in '" + mask_dir + "' is empty; masks must be non-zero on the objects");
  return d;
}

}  // namespace leanseg
