// Segments an image with a leanseg model exported to ONNX, using only OpenCV's DNN module:
//
//   leanseg export --model model.safetensors --format onnx --out model.onnx
//   example_onnx_opencv model.onnx image.png --size N [--mean M] [--std S] [--threshold T] [--rgb]
//
// The image is scaled to [0, 1], resized to N×N (the model's input size, which `leanseg export`
// prints) and normalised as (x − M) / S (default 0.5 / 0.5, what the zoo's grey models use);
// the probabilities (sigmoid of the logits) are resized back to the image size and thresholded
// at T (default 0.5).
// Writes <image>_mask.png (0 / 255) next to the image.
#include <cstdio>
#include <filesystem>
#include <opencv2/dnn.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>
#include <string>

namespace {

struct Args {
  std::string model, image;
  int size = 0;  // required
  double mean = 0.5, std = 0.5, threshold = 0.5;
  bool rgb = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--size") a.size = std::stoi(value());
    else if (arg == "--mean") a.mean = std::stod(value());
    else if (arg == "--std") a.std = std::stod(value());
    else if (arg == "--threshold") a.threshold = std::stod(value());
    else if (arg == "--rgb") a.rgb = true;
    else if (a.model.empty()) a.model = arg;
    else if (a.image.empty()) a.image = arg;
    else throw std::runtime_error("unexpected argument '" + arg + "'");
  }
  if (a.model.empty() || a.image.empty())
    throw std::runtime_error("usage: example_onnx_opencv MODEL.onnx IMAGE --size N [--mean M] [--std S] "
                             "[--threshold T] [--rgb]");
  if (a.size <= 0 || a.size % 32 != 0)
    throw std::runtime_error("--size N is required: the model's input size (a multiple of 32, printed by leanseg export)");
  if (a.std <= 0) throw std::runtime_error("--std must be positive");
  if (a.threshold <= 0 || a.threshold >= 1) throw std::runtime_error("--threshold must be in (0, 1)");
  return a;
}

std::string mask_path_for(const std::string& image) {
  const std::filesystem::path p(image);
  return (p.parent_path() / (p.stem().string() + "_mask.png")).string();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse_args(argc, argv);
    cv::Mat image = cv::imread(a.image, a.rgb ? cv::IMREAD_COLOR : cv::IMREAD_GRAYSCALE);
    if (image.empty()) throw std::runtime_error("cannot read image '" + a.image + "'");
    cv::dnn::Net net = cv::dnn::readNetFromONNX(a.model);

    // Scale to [0, 1] in float before resizing (area interpolation when shrinking), as leanseg
    // does; blobFromImage then computes (x − M) · (1/S).
    cv::Mat image01, resized;
    image.convertTo(image01, CV_32F, 1.0 / 255.0);
    const cv::Size input(a.size, a.size);
    const bool enlarging = static_cast<size_t>(input.area()) > image.total();
    cv::resize(image01, resized, input, 0, 0, enlarging ? cv::INTER_LINEAR : cv::INTER_AREA);
    const cv::Mat blob = cv::dnn::blobFromImage(resized, 1.0 / a.std, input, cv::Scalar::all(a.mean),
                                                /*swapRB=*/a.rgb, /*crop=*/false, CV_32F);
    net.setInput(blob, "image");
    const cv::Mat logits = net.forward();  // [1, 1, N, N]

    // Probability = sigmoid(logit), resized back to the image and thresholded (as leanseg predicts).
    const cv::Mat logit_map(a.size, a.size, CV_32F, const_cast<float*>(logits.ptr<float>()));
    cv::Mat prob, full, mask;
    cv::exp(-logit_map, prob);
    prob = 1.0 / (1.0 + prob);
    cv::resize(prob, full, image.size(), 0, 0, cv::INTER_LINEAR);
    cv::threshold(full, mask, a.threshold, 255, cv::THRESH_BINARY);
    mask.convertTo(mask, CV_8U);

    const std::string out = mask_path_for(a.image);
    if (!cv::imwrite(out, mask)) throw std::runtime_error("cannot write '" + out + "'");
    std::printf("wrote %s (%dx%d, %.1f%% foreground)\n", out.c_str(), mask.cols, mask.rows,
                100.0 * cv::countNonZero(mask) / static_cast<double>(mask.total()));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "example_onnx_opencv: %s\n", e.what());
    return 1;
  }
}
