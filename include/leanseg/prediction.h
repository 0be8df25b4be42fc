// Whole-image prediction shared by the LibTorch path (`leanseg predict`, eval) and the
// LibTorch-free runtime (`leanseg-infer`): the input-mode geometry around a network call
// ("resize", "pad", "tile"), thresholding, overlays and PNG outputs. Torch-free (OpenCV), so
// both paths produce their masks with exactly the same code.
#pragma once
#include <functional>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "leanseg/metrics.h"
#include "leanseg/preprocessing.h"
#include "leanseg/runtime.h"

namespace leanseg {

// The network on one image: CV_32FC(C) in [0, 1] (not yet normalised) of a size that is a
// multiple of the size divisor → CV_32FC1 foreground probability of the same size.
using ProbabilityFn = std::function<cv::Mat(const cv::Mat& image01)>;

// Foreground probability (CV_32FC1) at the image's original size, as pre.mode says:
// "resize" (to pre's input size, back with bilinear), "pad" (reflect-padded to a multiple of
// size_divisor, cropped back) or "tile" (overlapping tiles of the input size, blended).
cv::Mat predict_probability_with(const Preprocessing& pre, int size_divisor, const cv::Mat& image01,
                                 const ProbabilityFn& run);

// Test-time augmentation by mirroring (nnU-Net's "mirroring"): `run` also sees the image flipped
// left-right ("h"; 2 passes) or flipped left-right, up-down and both ("hv"; 4 passes); each
// probability map is flipped back and the maps are averaged. "none" returns `run` itself.
// Throws Error for any other name.
ProbabilityFn mirrored_probability_fn(ProbabilityFn run, const std::string& tta);
const std::vector<std::string>& tta_names();  // "none", "h", "hv"

// The LibTorch-free engine as the network: re-planned for the image's size (a no-op when it is
// unchanged), normalised planar input, sigmoid of the logits. Keeps references to both.
ProbabilityFn engine_probability_fn(runtime::Engine& engine, const Preprocessing& pre);

// [H, W, C] float image in [0, 1] → planar C×H×W floats, normalised ((x − mean) / std).
std::vector<float> image_to_planar(const cv::Mat& image01, const Preprocessing& pre);

// prob > threshold → CV_8UC1 0/1.
cv::Mat threshold_mask(const cv::Mat& prob, double threshold);

// The first channel of the image in grey with the mask's outer contours in green and, when
// given and ok, the fitted ellipse in red (CV_8UC3).
cv::Mat overlay_image(const cv::Mat& image01, const cv::Mat& mask, const EllipseFit* fit = nullptr);

// PNG bytes of `m`; throws Error naming `path` (the file it is meant for) when OpenCV cannot encode it.
std::vector<unsigned char> encode_png(const cv::Mat& m, const std::string& path);
// Writes bytes atomically (fs.h): the file appears complete or not at all.
void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes);
void write_png(const std::string& path, const cv::Mat& m);

// Command-line inputs → one job per image: a file, "a.tif+b.tif" (one file per channel of a
// multi-channel model), or a folder (its image files, sorted, HC18 "_Annotation" files skipped).
// Throws Error when nothing is left.
std::vector<std::vector<std::string>> expand_image_inputs(const std::vector<std::string>& inputs);
std::vector<std::string> split_plus(const std::string& s);  // "a.tif+b.tif" → {"a.tif", "b.tif"}

}  // namespace leanseg
