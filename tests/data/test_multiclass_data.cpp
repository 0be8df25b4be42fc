// Multi-class segmentation, the torch-free half: label masks in folder datasets (K inferred or
// given, 8/16-bit PNG/TIFF, clear errors for masks that fit neither), the synthetic 3-class set,
// per-class metrics, and prediction's K-channel geometry, argmax and outputs.
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <set>

#include "data_fixtures.h"
#include "leanseg/data.h"
#include "leanseg/error.h"
#include "leanseg/metrics.h"
#include "leanseg/prediction.h"

namespace leanseg {
namespace {
using namespace test;
namespace fs = std::filesystem;

std::set<int> values_of(const cv::Mat& m) {
  std::set<int> v;
  for (auto it = m.begin<uchar>(); it != m.end<uchar>(); ++it) v.insert(*it);
  return v;
}

// Background 0, a 4x4 square of class 1 and a 2x2 square of `second` inside it.
cv::Mat labels_8x8(int second) {
  cv::Mat m = cv::Mat::zeros(8, 8, CV_8UC1);
  m(cv::Rect(1, 1, 4, 4)).setTo(1);
  m(cv::Rect(2, 2, 2, 2)).setTo(second);
  return m;
}

struct LabelFolder : ::testing::Test {
  TempDir dir;
  std::string root = dir.path.string();
  void SetUp() override {
    fs::create_directories(root + "/images");
    fs::create_directories(root + "/masks");
  }
  void add(const std::string& stem, const cv::Mat& mask, const std::string& mask_ext = ".png") const {
    ASSERT_TRUE(cv::imwrite(root + "/images/" + stem + ".png", cv::Mat(mask.size(), CV_8UC1, cv::Scalar(100))));
    ASSERT_TRUE(cv::imwrite(root + "/masks/" + stem + mask_ext, mask));
  }
};

TEST_F(LabelFolder, ClassCountIsInferredFromLabelMasksAndTheLabelsAreKept) {
  add("a", labels_8x8(2));
  add("b", labels_8x8(1));                   // only class 1 here
  add("c", cv::Mat::zeros(8, 8, CV_8UC1));  // a negative example
  const Dataset d = read_folder(root);
  EXPECT_EQ(d.num_classes, 3);
  ASSERT_EQ(d.samples.size(), 3u);
  EXPECT_EQ(cv::countNonZero(d.samples[0].mask != labels_8x8(2)), 0);
  EXPECT_EQ(cv::countNonZero(d.samples[1].mask != labels_8x8(1)), 0);
  EXPECT_EQ(read_folder(root, 5).num_classes, 5);  // given: more classes than the masks show is allowed
  EXPECT_EQ(read_dataset(root, "auto", {}, 3).num_classes, 3);
}

TEST_F(LabelFolder, SixteenBitTiffLabelMasksAreRead) {
  cv::Mat m16;
  labels_8x8(3).convertTo(m16, CV_16U);
  add("a", m16, ".tif");
  add("b", labels_8x8(1), ".tiff");
  const Dataset d = read_folder(root);
  EXPECT_EQ(d.num_classes, 4);
  EXPECT_EQ(d.samples[0].mask.type(), CV_8UC1);
  EXPECT_EQ(values_of(d.samples[0].mask), (std::set<int>{0, 1, 3}));
  EXPECT_EQ(values_of(d.samples[1].mask), (std::set<int>{0, 1}));
}

// A binary setup (a binary model, --num-classes 2) refuses label masks instead of binarising them.
TEST_F(LabelFolder, LabelMasksInABinarySetupAreAnErrorNamingFileAndValues) {
  add("a", labels_8x8(2));
  EXPECT_ERROR_CONTAINS(read_folder(root, 2), "mask '" + root + "/masks/a.png' is not binary: it holds the values 0, 1, 2");
  EXPECT_ERROR_CONTAINS(read_dataset(root, "folder", {}, 2), "--num-classes K");
}

TEST_F(LabelFolder, LabelsAboveTheClassCountAreAnErrorNamingFileAndValues) {
  add("a", labels_8x8(2));
  add("b", labels_8x8(5));
  EXPECT_ERROR_CONTAINS(read_folder(root, 3), "mask '" + root + "/masks/b.png' holds the values 0, 1, 5; a 3-class model "
                                              "takes labels 0..2");
  EXPECT_ERROR_CONTAINS(read_folder(root, 1), "number of classes must be in [2, 64]");
  EXPECT_ERROR_CONTAINS(read_folder(root, 65), "number of classes must be in [2, 64]");
}

TEST_F(LabelFolder, ColourLabelMasksAreRefused) {
  cv::Mat colour;
  cv::cvtColor(labels_8x8(2), colour, cv::COLOR_GRAY2BGR);
  add("a", colour);
  EXPECT_ERROR_CONTAINS(read_folder(root, 3), "has 3 channels; label masks of a 3-class model are single-channel");
}

// Anti-aliased edges (0, 128, 255) are neither binary nor labels; 0/1 and 0/255 masks mixed
// stay binary (255 cannot be a class index).
TEST_F(LabelFolder, MasksThatAreNeitherBinaryNorLabelsAreRefused) {
  cv::Mat soft = cv::Mat::zeros(8, 8, CV_8UC1);
  soft(cv::Rect(0, 0, 4, 4)).setTo(255);
  soft.at<uchar>(4, 4) = 128;
  add("a", soft);
  EXPECT_ERROR_CONTAINS(read_folder(root), "mask '" + root + "/masks/a.png' holds the values 0, 128, 255: neither binary");
  fs::remove(root + "/masks/a.png");
  cv::Mat white = cv::Mat::zeros(8, 8, CV_8UC1);
  white(cv::Rect(0, 0, 4, 4)).setTo(255);
  add("a", white);
  add("b", labels_8x8(1));
  const Dataset d = read_folder(root);
  EXPECT_EQ(d.num_classes, 2);
  EXPECT_EQ(values_of(d.samples[0].mask), (std::set<int>{0, 1}));
}

TEST(SyntheticClasses, EllipseRingAndBackgroundAreAllThereAndDeterministic) {
  const Dataset d = make_synthetic_classes(4, 64, 64, 5);
  EXPECT_EQ(d.num_classes, 3);
  ASSERT_EQ(d.samples.size(), 4u);
  for (const auto& s : d.samples) {
    EXPECT_EQ(values_of(s.mask), (std::set<int>{0, 1, 2})) << s.id;
    // The ring lies inside the ellipse: every ring pixel's 4 neighbours are ring or ellipse.
    for (int y = 1; y < 63; ++y)
      for (int x = 1; x < 63; ++x)
        if (s.mask.at<uchar>(y, x) == 2)
          for (const cv::Point n : {cv::Point(x - 1, y), cv::Point(x + 1, y), cv::Point(x, y - 1), cv::Point(x, y + 1)})
            ASSERT_NE(s.mask.at<uchar>(n), 0) << s.id << " at " << x << "," << y;
    // Each class has its own brightness: ring > ellipse > background on average.
    EXPECT_GT(cv::mean(s.image, s.mask == 2)[0], cv::mean(s.image, s.mask == 1)[0] + 0.1);
    EXPECT_GT(cv::mean(s.image, s.mask == 1)[0], cv::mean(s.image, s.mask == 0)[0] + 0.1);
  }
  const Dataset again = make_synthetic_classes(2, 64, 64, 5);
  EXPECT_EQ(cv::norm(again.samples[1].image, d.samples[1].image, cv::NORM_INF), 0.0);
}

TEST(ClassMetrics, PerClassOverlapsAndTheirForegroundMeans) {
  // truth: row 0 = 0 0 1 1, row 1 = 2 2 2 2; pred: row 0 = 0 1 1 1, row 1 = 2 2 0 0.
  const cv::Mat truth = (cv::Mat_<uchar>(2, 4) << 0, 0, 1, 1, 2, 2, 2, 2);
  const cv::Mat pred = (cv::Mat_<uchar>(2, 4) << 0, 1, 1, 1, 2, 2, 0, 0);
  const auto per_class = class_overlaps(pred, truth, 3);
  ASSERT_EQ(per_class.size(), 3u);
  EXPECT_EQ(per_class[1].tp, 2);
  EXPECT_EQ(per_class[1].fp, 1);
  EXPECT_EQ(per_class[1].fn, 0);
  EXPECT_EQ(per_class[1].tn, 5);
  EXPECT_EQ(per_class[2].tp, 2);
  EXPECT_EQ(per_class[2].fp, 0);
  EXPECT_EQ(per_class[2].fn, 2);
  EXPECT_EQ(per_class[2].tn, 4);
  EXPECT_EQ(per_class[0].tp, 1);
  EXPECT_EQ(per_class[0].fp, 2);
  EXPECT_EQ(per_class[0].fn, 1);
  EXPECT_NEAR(mean_foreground_dice(per_class), (4.0 / 5 + 4.0 / 6) / 2, 1e-12);
  EXPECT_NEAR(mean_foreground_iou(per_class), (2.0 / 3 + 2.0 / 4) / 2, 1e-12);
  EXPECT_ERROR_CONTAINS(class_overlaps(pred, truth, 2), "label 2 is not below the number of classes 2");
}

TEST(ClassPrediction, SoftmaxAndArgmaxOfPlanarLogits) {
  // 2 pixels, 3 classes, planar: pixel 0 logits (0, ln 2, ln 5) → softmax (1/8, 2/8, 5/8); pixel 1 ties at class 1 and 2.
  const float logits[] = {0.f, 0.f, std::log(2.f), 3.f, std::log(5.f), 3.f};
  const cv::Mat prob = softmax_planar(logits, 3, 1, 2);
  ASSERT_EQ(prob.type(), CV_32FC3);
  const cv::Vec3f p0 = prob.at<cv::Vec3f>(0, 0);
  EXPECT_NEAR(p0[0], 1 / 8.0, 1e-6);
  EXPECT_NEAR(p0[1], 2 / 8.0, 1e-6);
  EXPECT_NEAR(p0[2], 5 / 8.0, 1e-6);
  const cv::Mat labels = segmentation_mask(prob, 0.5);
  ASSERT_EQ(labels.type(), CV_8UC1);
  EXPECT_EQ(labels.at<uchar>(0, 0), 2);
  EXPECT_EQ(labels.at<uchar>(0, 1), 1);  // the first of equal maxima, as torch.argmax
  const cv::Mat one = (cv::Mat_<float>(1, 2) << 0.4f, 0.6f);
  EXPECT_EQ(values_of(segmentation_mask(one, 0.5) * 7), (std::set<int>{0, 7}));  // one channel: thresholded 0/1
}

// The geometry (resize, pad, tile) and mirroring work on K-channel maps channel by channel:
// a network whose channel c is (c + 1) × the 1-channel network gives (c + 1) × its result.
TEST(ClassPrediction, GeometryAndMirroringKeepEveryClassChannel) {
  cv::Mat image(70, 90, CV_32FC1);
  cv::randu(image, 0.0, 1.0);
  const ProbabilityFn single = [](const cv::Mat& x) { return cv::Mat(x * 0.5); };
  const ProbabilityFn triple = [](const cv::Mat& x) {
    cv::Mat out;
    cv::merge(std::vector<cv::Mat>{x * 0.5, x * 1.0, x * 1.5}, out);
    return out;
  };
  for (const char* mode : {"resize", "pad", "tile"}) {
    Preprocessing pre;
    pre.mode = mode;
    pre.input_height = pre.input_width = 32;
    const cv::Mat one = predict_probability_with(pre, 32, image, mirrored_probability_fn(single, "hv"));
    const cv::Mat three = predict_probability_with(pre, 32, image, mirrored_probability_fn(triple, "hv"));
    ASSERT_EQ(three.type(), CV_32FC3) << mode;
    ASSERT_EQ(three.size(), image.size()) << mode;
    std::vector<cv::Mat> planes;
    cv::split(three, planes);
    for (int c = 0; c < 3; ++c) EXPECT_LE(cv::norm(planes[c], one * (c + 1), cv::NORM_INF), 1e-5) << mode << " class " << c;
  }
}

TEST(ClassPrediction, OutputsAreALabelMapClassProbabilitiesAndAColouredOverlay) {
  TempDir dir;
  cv::Mat image(8, 8, CV_32FC1, cv::Scalar(0.5));
  std::vector<cv::Mat> planes(3, cv::Mat(8, 8, CV_32FC1, cv::Scalar(0.1)));
  planes[1] = cv::Mat(8, 8, CV_32FC1, cv::Scalar(0.2));
  planes[2] = cv::Mat(8, 8, CV_32FC1, cv::Scalar(0.6));
  cv::Mat prob;
  cv::merge(planes, prob);
  const cv::Mat labels = labels_8x8(2);
  const EncodedFiles files = encode_prediction_pngs(dir.file("x"), image, prob, labels, true);
  std::vector<std::string> names;
  for (const auto& f : files) names.push_back(fs::path(f.first).filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"x_labels.png", "x_prob_0.png", "x_prob_1.png", "x_prob_2.png", "x_overlay.png"}));
  write_files(files);
  EXPECT_EQ(cv::countNonZero(cv::imread(dir.file("x_labels.png"), cv::IMREAD_UNCHANGED) != labels), 0);
  EXPECT_EQ(cv::imread(dir.file("x_prob_2.png"), cv::IMREAD_UNCHANGED).at<uchar>(5, 5), 153);  // 0.6 × 255
  const cv::Mat overlay = cv::imread(dir.file("x_overlay.png"), cv::IMREAD_COLOR);
  const cv::Vec3b background = overlay.at<cv::Vec3b>(7, 7), ring = overlay.at<cv::Vec3b>(2, 2), body = overlay.at<cv::Vec3b>(1, 1);
  EXPECT_EQ(background, cv::Vec3b(128, 128, 128));                       // the image, untouched
  EXPECT_GT(body[1], body[0] + 50);
  EXPECT_GT(ring[2], ring[1] + 50);  // class 1 green, class 2 red
}

TEST(ClassPrediction, LargestComponentPostProcessingWorksPerClass) {
  cv::Mat labels = cv::Mat::zeros(10, 10, CV_8UC1);
  labels(cv::Rect(0, 0, 3, 3)).setTo(1);  // class 1: 9 px and 1 px
  labels.at<uchar>(9, 9) = 1;
  labels(cv::Rect(5, 0, 2, 2)).setTo(2);  // class 2: 4 px and 2 px
  labels(cv::Rect(5, 8, 2, 1)).setTo(2);
  const cv::Mat out = postprocess_mask(labels, "largest", 3);
  EXPECT_EQ(cv::countNonZero(out == 1), 9);
  EXPECT_EQ(out.at<uchar>(9, 9), 0);
  EXPECT_EQ(cv::countNonZero(out == 2), 4);
  EXPECT_EQ(out.at<uchar>(8, 5), 0);
  EXPECT_ERROR_CONTAINS(postprocess_mask(labels, "ellipse", 3), "a 3-class label map takes none or largest");
}

TEST(ClassAugment, LabelValuesSurviveAugmentation) {
  const Dataset d = make_synthetic_classes(1, 64, 64, 9);
  AugmentOptions o;
  o.flip_p = o.rotate_p = o.scale_p = o.translate_p = 1.0;
  o.rot90 = true;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 5; ++i) {
    cv::Mat image = d.samples[0].image.clone(), mask = d.samples[0].mask.clone();
    augment(image, mask, o, rng);
    for (int v : values_of(mask)) EXPECT_TRUE(v == 0 || v == 1 || v == 2) << v;
    EXPECT_GT(cv::countNonZero(mask == 2), 0);
  }
}

}  // namespace
}  // namespace leanseg
