// Small models and datasets for the compression tests.
#pragma once
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "leanseg/data.h"
#include "leanseg/model.h"
#include "model_test_util.h"

namespace leanseg::test {

// The tiny efficient U-Net of the training tests (tests/train/test_train.cpp), random weights.
inline SegmentationModel tiny_efficient_unet(uint64_t seed = 7) {
  ModelConfig cfg;
  cfg.arch = "efficient-unet";
  cfg.options = {{"channels", {8, 8, 16, 16, 32, 32}}, {"reduction", 2}, {"attention_heads", 2}};
  auto m = create_model(cfg);
  randomize_weights(*m, seed);
  m->eval();
  return m;
}

// DIR/images + DIR/masks with a bright disc per image (the folder layout of tests/cli/test_cli.cpp).
inline void write_disc_folder(const std::string& dir, int count) {
  std::filesystem::create_directories(dir + "/images");
  std::filesystem::create_directories(dir + "/masks");
  for (int i = 0; i < count; ++i) {
    cv::Mat img(90, 120, CV_8UC1, cv::Scalar(30)), mask(90, 120, CV_8UC1, cv::Scalar(0));
    cv::circle(img, {60, 45}, 20 + 3 * i, cv::Scalar(220), cv::FILLED);
    cv::circle(mask, {60, 45}, 20 + 3 * i, cv::Scalar(255), cv::FILLED);
    cv::imwrite(dir + "/images/im" + std::to_string(i) + ".png", img);
    cv::imwrite(dir + "/masks/im" + std::to_string(i) + ".png", mask);
  }
}

}  // namespace leanseg::test
