// `predict --format tiff16|geojson`: the label image and the GeoJSON outlines describe exactly the
// mask's objects (counts, pixel sets, areas, holes).
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "leanseg/error.h"
#include "leanseg/prediction.h"
#include "test_util.h"

namespace leanseg {
namespace {

// Three objects: a disc with a square hole, a bar, a single pixel.
cv::Mat three_objects() {
  cv::Mat m = cv::Mat::zeros(60, 80, CV_8UC1);
  cv::circle(m, {20, 25}, 15, cv::Scalar(1), cv::FILLED);
  m(cv::Rect(16, 21, 8, 8)).setTo(0);
  m(cv::Rect(50, 10, 20, 6)).setTo(1);
  m.at<uchar>(50, 70) = 1;
  return m;
}

// Shoelace area of a ring [[x, y], ...] (closed).
double ring_area(const nlohmann::json& ring) {
  double a = 0;
  for (size_t i = 0; i + 1 < ring.size(); ++i)
    a += ring[i][0].get<double>() * ring[i + 1][1].get<double>() - ring[i + 1][0].get<double>() * ring[i][1].get<double>();
  return std::abs(a) / 2;
}

TEST(PredictionFormats, LabelTiffNumbersEachObjectAndReadsBackAs16Bit) {
  test::TempDir dir;
  const cv::Mat mask = three_objects();
  const std::string path = dir.file("x_labels.tif");
  write_bytes(path, encode_tiff(object_labels16(mask, path), path));
  const cv::Mat back = cv::imread(path, cv::IMREAD_UNCHANGED);
  ASSERT_EQ(back.type(), CV_16UC1);
  ASSERT_EQ(back.size(), mask.size());
  double hi = 0;
  cv::minMaxLoc(back, nullptr, &hi);
  EXPECT_EQ(hi, 3);
  EXPECT_EQ(cv::countNonZero((back != 0) != (mask != 0)), 0);  // the same foreground
  for (int label = 1; label <= 3; ++label) {  // each label one connected piece of the mask
    cv::Mat one = back == label, parts;
    EXPECT_EQ(cv::connectedComponents(one, parts, 8), 2) << label;
  }
  EXPECT_NE(back.at<uint16_t>(50, 70), 0);  // the single pixel is an object too
  EXPECT_NE(back.at<uint16_t>(50, 70), back.at<uint16_t>(12, 55));
}

TEST(PredictionFormats, GeoJsonHasOnePolygonPerObjectWithItsHole) {
  const cv::Mat mask = three_objects();
  const nlohmann::json g = nlohmann::json::parse(mask_geojson(mask).dump());
  EXPECT_EQ(g["type"], "FeatureCollection");
  ASSERT_EQ(g["features"].size(), 3u);
  int with_hole = 0;
  double total = 0;
  for (const auto& f : g["features"]) {
    EXPECT_EQ(f["type"], "Feature");
    EXPECT_EQ(f["geometry"]["type"], "Polygon");
    EXPECT_EQ(f["properties"]["objectType"], "annotation");
    EXPECT_EQ(f["properties"]["classification"]["name"], "Foreground");
    const auto& rings = f["geometry"]["coordinates"];
    for (const auto& ring : rings) {
      ASSERT_GE(ring.size(), 4u);
      EXPECT_EQ(ring.front(), ring.back()) << "ring not closed";
    }
    with_hole += rings.size() == 2;
    total += ring_area(rings[0]) - (rings.size() == 2 ? ring_area(rings[1]) : 0);
    // The outer ring's vertices are the object's boundary pixels (centres at +0.5).
    for (const auto& p : rings[0]) {
      const int x = static_cast<int>(std::floor(p[0].get<double>())), y = static_cast<int>(std::floor(p[1].get<double>()));
      if (rings[0].size() > 5) EXPECT_EQ(mask.at<uchar>(std::min(y, 59), std::min(x, 79)), 1) << x << "," << y;
    }
  }
  EXPECT_EQ(with_hole, 1);
  // Polygons through boundary-pixel centres cover the pixels less half a pixel along the
  // boundary: within the outline length of the pixel count.
  const double pixels = cv::countNonZero(mask);
  EXPECT_LT(total, pixels);
  EXPECT_GT(total, pixels - 0.6 * (2 * M_PI * 15 + 4 * 8 + 2 * 26 + 4));
  EXPECT_EQ(mask_geojson(cv::Mat::zeros(8, 8, CV_8UC1))["features"].size(), 0u);
}

}  // namespace
}  // namespace leanseg
