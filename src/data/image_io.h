// Image-file helpers shared by the dataset readers (internal to src/data).
#pragma once
#include <functional>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "leanseg/data.h"

namespace leanseg::data_detail {

// Reads an image exactly as stored (depth and channel count kept): the one loader of the
// dataset readers and of prediction (read_input_image). TIFFs go through read_tiff_image
// (`read` chooses the page and channel); for other files a page > 0 is refused and a channel is
// picked from the decoded image. Throws Error naming the file when it does not exist or cannot be
// decoded. `role` ("image", "annotation", ...) makes the message say which input is wrong.
cv::Mat read_raw_image(const std::string& path, const std::string& role, const ImageReadOptions& read = {});

bool is_tiff_path(const std::string& path);
// tiff_image.cpp (libtiff): the page count; the chosen page and channel of a TIFF, decoded by
// libtiff for multi-page, multi-channel (non-colour) and float files, by `read_with_opencv` for
// plain single-page grey/colour ones (as before). Colour comes as B, G, R (, A) like imread.
size_t tiff_page_count(const std::string& path, const std::string& role);
cv::Mat read_tiff_image(const std::string& path, const std::string& role, const ImageReadOptions& read,
                        const std::function<cv::Mat()>& read_with_opencv);
// Sample `channel` (file order; -1: the whole image) of `raw`; bgr_order: `raw` holds colour as
// OpenCV's B, G, R. Throws Error naming the file for a channel out of range.
cv::Mat pick_channel(const cv::Mat& raw, int channel, bool bgr_order, const std::string& path);
// A float plane mapped to [0, 1]: lo -> 0, hi -> 1 (clamped) for range {lo, hi}; with no range,
// the plane's own min..max, with a note naming the file and the range used.
cv::Mat float_to_unit(const cv::Mat& plane, const std::vector<double>& range, const std::string& path);

// One channel of a raw image as stored (same depth): "gray" converts colour to grey, "r"/"g"/"b"
// pick a colour channel, "w1"/"w2" expect a grey image. A grey image (with or without alpha)
// serves every name. Throws Error naming the file for an unknown channel name or an unusable image.
cv::Mat raw_channel(const cv::Mat& raw, const std::string& channel, const std::string& path);

// CV_32F copy of `raw` divided by max_value and clamped to [0, 1].
cv::Mat scale_to_unit(const cv::Mat& raw, double max_value);

// The maximum value of the file's pixel type: 255 for 8-bit, 65535 for 16-bit. Throws Error
// naming the file and its pixel type for others (float, signed).
double type_max_value(const cv::Mat& raw, const std::string& path);

// The raw value that maps to 1.0 in an image for a model (or dataset) whose intensities were
// divided by max_value: max_value itself for files of the bit depth it belongs to (8-bit for
// max_value <= 255, 16-bit above), else the file's own type maximum, so that a 16-bit PNG
// given to a model of 8-bit images is scaled by 65535 instead of saturating. Throws as
// type_max_value does (float files have no known range).
double unit_scale_max(const cv::Mat& raw, double max_value, const std::string& path);

// CV_8UC1 0/1 mask: 1 where any colour (or grey) channel is non-zero; alpha is ignored.
cv::Mat foreground_of(const cv::Mat& raw);
// foreground_of a mask whose colour planes hold 0 and at most one other value (0/1, 0/255, a
// white or red object on black, ...); throws Error naming the file and the values found for
// others (a multi-class or anti-aliased mask would otherwise be binarised at > 0 silently).
cv::Mat binary_foreground(const cv::Mat& raw, const std::string& path);

// The distinct values of the colour planes of an 8- or 16-bit mask (alpha ignored), ascending;
// at most `cap` of them.
std::vector<int> mask_values(const cv::Mat& raw, size_t cap);
// "0, 1, 2" (the first 8 values, then ", ...").
std::string values_text(const std::vector<int>& values);
// A label mask of a model with `num_classes` classes: one 8- or 16-bit plane whose values are
// class indices 0..num_classes-1, as CV_8UC1. Throws Error naming the file and the values
// found otherwise.
cv::Mat label_mask(const cv::Mat& raw, int num_classes, const std::string& path);

// Files directly inside `dir` whose extension (lower-cased, with dot) is in `extensions`,
// sorted by name. Throws Error if `dir` is not a directory.
std::vector<std::string> list_files(const std::string& dir, const std::vector<std::string>& extensions);

std::string file_stem(const std::string& path);
std::string file_name(const std::string& path);
bool is_directory(const std::string& path);
bool is_file(const std::string& path);

// Prints one "leanseg: warning: ..." line to stderr.
void warn(const std::string& message);

}  // namespace leanseg::data_detail
