// HC18 reader: ultrasound images, outline annotations filled into masks, pixel sizes from the CSV.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "image_io.h"
#include "leanseg/data.h"
#include "leanseg/error.h"
#include "leanseg/mask_geometry.h"
#include "parallel.h"

namespace leanseg {
namespace {
using namespace data_detail;

const char* const kCsvName = "training_set_pixel_size_and_HC.csv";
const char* const kAnnotationSuffix = "_Annotation";

struct CsvRow {
  double pixel_size_mm = 0, hc_mm = 0;
};

std::vector<std::string> split_commas(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream ss(line);
  std::string field;
  while (std::getline(ss, field, ',')) fields.push_back(field);
  if (!line.empty() && line.back() == ',') fields.push_back("");  // getline drops a trailing empty field
  return fields;
}

// Parses a whole field as a finite positive number; throws naming the CSV line otherwise.
double positive_number(const std::string& field, const std::string& column, const std::string& where) {
  const char* begin = field.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(begin, &end);
  require(end != begin && *end == '\0' && errno == 0 && std::isfinite(v),
          where + ": " + column + " '" + field + "' is not a number");
  require(v > 0, where + ": " + column + " must be positive, got " + field);
  return v;
}

// Lines ended by CRLF, LF or a lone CR (old Mac editors and some spreadsheet exports): a file
// of CR-only lines is otherwise one long line, and every image "has no row".
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string line;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '\r' && c != '\n') {
      line += c;
      continue;
    }
    if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    lines.push_back(std::move(line));
    line.clear();
  }
  if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

// The CSV has CRLF line ends and no final newline; LF and CR line ends and blank lines are tolerated.
std::map<std::string, CsvRow> read_hc18_csv(const std::string& path) {
  require(is_file(path), "HC18 CSV '" + path + "' does not exist");
  std::ifstream in(path, std::ios::binary);
  require(static_cast<bool>(in), "cannot open HC18 CSV '" + path + "'");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::map<std::string, CsvRow> rows;
  int line_no = 0;
  for (std::string line : split_lines(text)) {
    ++line_no;
    if (line_no == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 byte-order mark
    if (line.empty()) continue;
    const std::string where = "HC18 CSV '" + path + "' line " + std::to_string(line_no);
    const auto fields = split_commas(line);
    if (line_no == 1) {
      require(!fields.empty() && fields[0] == "filename",
              where + ": expected the header 'filename,pixel size(mm),head circumference (mm)', got '" + line + "'");
      continue;
    }
    require(fields.size() == 3, where + ": expected 3 columns (filename, pixel size, head circumference), got " +
                                    std::to_string(fields.size()) + ": '" + line + "'");
    require(!fields[0].empty(), where + ": empty filename");
    CsvRow row;
    row.pixel_size_mm = positive_number(fields[1], "pixel size", where);
    row.hc_mm = positive_number(fields[2], "head circumference", where);
    require(rows.emplace(fields[0], row).second, where + ": '" + fields[0] + "' is listed twice");
  }
  require(line_no > 0, "HC18 CSV '" + path + "' is empty");
  return rows;
}

std::string size_text(const cv::Mat& m) { return std::to_string(m.cols) + "x" + std::to_string(m.rows); }

// An outline with a gap lets the fill leak out: the "head" is then the outline pixels only. The
// HC18 annotations are ellipses, so such an outline is closed by the ellipse fitted to its
// pixels (cv::fitEllipse), filled, with the outline pixels (a warning names the file). A
// closed outline fills to about its fitted ellipse's area; a leaked fill to a small fraction.
cv::Mat close_open_outline(const cv::Mat& outline, const cv::Mat& filled, const std::string& path) {
  std::vector<cv::Point> points;
  cv::findNonZero(outline, points);
  if (points.size() < 5) return filled;  // too few to fit; the fill stands
  cv::Mat ellipse = cv::Mat::zeros(outline.size(), CV_8UC1);
  cv::ellipse(ellipse, cv::fitEllipse(points), cv::Scalar(1), cv::FILLED);
  const int fitted = cv::countNonZero(ellipse), got = cv::countNonZero(filled);
  if (got >= fitted / 2) return filled;
  ellipse |= (outline != 0) / 255;
  warn("HC18 annotation '" + path + "' has an open outline (the fill leaked: " + std::to_string(got) +
       " head pixels of about " + std::to_string(fitted) + "); its mask is the ellipse fitted to the outline");
  return ellipse;
}

// Checks the outline annotation and fills it into a 0/1 mask (outline pixels count as head).
cv::Mat mask_from_annotation(const cv::Mat& raw, const cv::Mat& image, const std::string& path) {
  require(raw.type() == CV_8UC1, "HC18 annotation '" + path + "' is not an 8-bit grey PNG");
  require(raw.size() == image.size(), "HC18 annotation '" + path + "' is " + size_text(raw) +
                                          " but its image is " + size_text(image));
  const cv::Mat non_binary = (raw != 0) & (raw != 255);
  if (cv::countNonZero(non_binary) > 0) {
    cv::Point where;
    cv::minMaxLoc(non_binary, nullptr, nullptr, nullptr, &where);
    throw Error("HC18 annotation '" + path + "' is not binary: value " +
                std::to_string(raw.at<uchar>(where)) + " at (x=" + std::to_string(where.x) +
                ", y=" + std::to_string(where.y) + "); expected only 0 and 255");
  }
  require(cv::countNonZero(raw) > 0, "HC18 annotation '" + path + "' is empty (no outline pixels)");
  cv::Mat mask = fill_outline(raw);
  mask = (mask != 0) / 255;
  require(cv::countNonZero(mask) > 0, "HC18 annotation '" + path + "' gives an empty mask after filling");
  return close_open_outline(raw, mask, path);
}

Sample read_hc18_sample(const std::string& image_path, const std::map<std::string, CsvRow>& csv,
                        const std::string& csv_path) {
  Sample s;
  s.id = file_stem(image_path);
  s.group = s.id.substr(0, s.id.find('_'));  // exam prefix: "010" for 010_HC, 010_2HC, ...
  s.image_path = image_path;
  const auto row = csv.find(file_name(image_path));
  require(row != csv.end(), "HC18 image '" + image_path + "' has no row in '" + csv_path + "'");
  s.pixel_size_mm = row->second.pixel_size_mm;
  s.hc_mm = row->second.hc_mm;

  const cv::Mat raw = read_raw_image(image_path, "HC18 image");
  require(raw.depth() == CV_8U, "HC18 image '" + image_path + "' is not 8-bit");
  s.image = scale_to_unit(raw_channel(raw, "gray", image_path), 255.0);

  const std::string annotation_path =
      image_path.substr(0, image_path.size() - 4) + kAnnotationSuffix + ".png";
  require(is_file(annotation_path),
          "HC18 annotation '" + annotation_path + "' is missing for image '" + image_path + "'");
  const cv::Mat outline = read_raw_image(annotation_path, "HC18 annotation");
  s.mask = mask_from_annotation(outline, s.image, annotation_path);
  s.outline_offset_px = outline_offset_px(outline, s.mask);
  return s;
}

bool is_annotation(const std::string& path) {
  const std::string stem = file_stem(path);
  const std::string suffix = kAnnotationSuffix;
  return stem.size() >= suffix.size() && stem.compare(stem.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Dataset read_hc18(const std::string& dir) {
  const std::string image_dir = dir + "/training_set";
  const std::string csv_path = dir + "/" + kCsvName;
  require(is_directory(image_dir), "HC18 folder '" + image_dir + "' does not exist");
  const auto csv = read_hc18_csv(csv_path);

  std::vector<std::string> images;
  for (const auto& f : list_files(image_dir, {".png"})) {
    if (!is_annotation(f)) {
      images.push_back(f);
    } else {
      const std::string image = f.substr(0, f.size() - 4 - std::string(kAnnotationSuffix).size()) + ".png";
      if (!is_file(image)) warn("HC18 annotation '" + f + "' has no image '" + image + "'; ignored");
    }
  }
  require(!images.empty(), "HC18 folder '" + image_dir + "' contains no images (NNN_HC.png)");

  Dataset d;
  d.kind = "hc18";
  d.channels = {"gray"};
  d.max_value = 255;
  d.samples.resize(images.size());
  parallel_for_index(images.size(), [&](size_t i) { d.samples[i] = read_hc18_sample(images[i], csv, csv_path); });
  return d;
}

}  // namespace leanseg
