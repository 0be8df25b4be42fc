// Prediction outputs for other programs: 16-bit label TIFFs (napari, Fiji) and GeoJSON outlines
// (QuPath). The mask itself stays the one prediction.cpp thresholds.
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "leanseg/error.h"
#include "leanseg/prediction.h"

namespace leanseg {
namespace {

using json = nlohmann::json;

// A closed ring through the contour points' pixel centres (x + 0.5, y + 0.5).
json ring_of(const std::vector<cv::Point>& contour) {
  json ring = json::array();
  if (contour.size() < 3) {  // one or two pixels: the square their pixels cover
    const cv::Rect r = cv::boundingRect(contour);
    for (const cv::Point p : {r.tl(), cv::Point(r.x + r.width, r.y), r.br(), cv::Point(r.x, r.y + r.height), r.tl()})
      ring.push_back({p.x, p.y});
    return ring;
  }
  for (const auto& p : contour) ring.push_back({p.x + 0.5, p.y + 0.5});
  ring.push_back(ring.front());
  return ring;
}

}  // namespace

cv::Mat object_labels16(const cv::Mat& mask, const std::string& path) {
  cv::Mat labels;
  const int n = cv::connectedComponents(mask != 0, labels, 8, CV_32S) - 1;
  require(n <= 65535, "cannot write '" + path + "': " + std::to_string(n) + " objects do not fit a 16-bit label image");
  cv::Mat out;
  labels.convertTo(out, CV_16U);
  return out;
}

std::vector<unsigned char> encode_tiff(const cv::Mat& m, const std::string& path) {
  std::vector<unsigned char> buf;
  require(cv::imencode(".tif", m, buf), "cannot encode " + path);
  return buf;
}

json mask_geojson(const cv::Mat& mask, const std::string& class_name) {
  std::vector<std::vector<cv::Point>> contours;
  std::vector<cv::Vec4i> hierarchy;  // [next, previous, first child, parent]; CCOMP: 2 levels
  cv::Mat binary = mask != 0;
  cv::findContours(binary, contours, hierarchy, cv::RETR_CCOMP, cv::CHAIN_APPROX_SIMPLE);
  json features = json::array();
  for (size_t i = 0; i < contours.size(); ++i) {
    if (hierarchy[i][3] >= 0) continue;  // a hole: written with its object
    json rings = json::array({ring_of(contours[i])});
    for (int h = hierarchy[i][2]; h >= 0; h = hierarchy[h][0])
      if (contours[h].size() >= 3) rings.push_back(ring_of(contours[h]));  // a hole of 1-2 pixels stays filled
    features.push_back({{"type", "Feature"},
                        {"geometry", {{"type", "Polygon"}, {"coordinates", rings}}},
                        {"properties", {{"objectType", "annotation"},
                                        {"classification", {{"name", class_name}, {"color", {0, 200, 0}}}}}}});
  }
  return {{"type", "FeatureCollection"}, {"features", features}};
}

const std::vector<std::string>& prediction_format_names() {
  static const std::vector<std::string> names = {"png", "tiff16", "geojson"};
  return names;
}

}  // namespace leanseg
