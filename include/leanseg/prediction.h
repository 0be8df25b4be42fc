// Whole-image prediction shared by the LibTorch path (`leanseg predict`, eval) and the
// LibTorch-free runtime (`leanseg-infer`): the input-mode geometry around a network call
// ("resize", "pad", "tile"), thresholding, overlays and PNG outputs. Torch-free (OpenCV), so
// both paths produce their masks with exactly the same code.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "leanseg/mask_geometry.h"
#include "leanseg/preprocessing.h"

namespace leanseg::runtime {
class Engine;  // leanseg/runtime.h: only engine_probability_fn needs it, and only by reference
}

namespace leanseg {

// The network on one image: CV_32FC(C) in [0, 1] (not yet normalised) of a size that is a
// multiple of the size divisor → probabilities of the same size: CV_32FC1 foreground probability
// (binary models), or CV_32FC(K) class probabilities (softmax; K-class models).
using ProbabilityFn = std::function<cv::Mat(const cv::Mat& image01)>;

// Probabilities (as ProbabilityFn's) at the image's original size, as pre.mode says:
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
// unchanged), normalised planar input, sigmoid of one logit channel or softmax of K. Keeps
// references to both.
ProbabilityFn engine_probability_fn(runtime::Engine& engine, const Preprocessing& pre);
// Planar K×H×W logits → CV_32FC(K) softmax over the K channels of each pixel.
cv::Mat softmax_planar(const float* logits, int channels, int height, int width);

// [H, W, C] float image in [0, 1] → planar C×H×W floats, normalised ((x − mean) / std).
std::vector<float> image_to_planar(const cv::Mat& image01, const Preprocessing& pre);

// prob > threshold → CV_8UC1 0/1.
cv::Mat threshold_mask(const cv::Mat& prob, double threshold);
// CV_32FC(K) class probabilities → CV_8UC1 label map: the most probable class of each pixel
// (the lowest index among equal maxima, as torch.argmax).
cv::Mat argmax_labels(const cv::Mat& prob);
// The predicted mask of a probability map: threshold_mask of one channel (0/1), argmax_labels
// of K (class indices 0..K-1).
cv::Mat segmentation_mask(const cv::Mat& prob, double threshold);

// Post-processing of a thresholded 0/1 mask (`--postprocess`): "none" returns it; "largest" keeps
// only its largest 8-connected component (nnU-Net's post-processing, for one object per image);
// "ellipse" replaces it by the filled ellipse fitted to the largest component's outline (an
// HC18 head: the fit is what HC is measured on, so mask and HC agree). An empty mask stays
// empty. A label map of num_classes > 2 takes "none" or "largest" (each class keeps its largest
// component; the rest becomes background). Throws Error for any other name.
cv::Mat postprocess_mask(const cv::Mat& mask, const std::string& how, int num_classes = 2);
const std::vector<std::string>& postprocess_names();  // "none", "largest", "ellipse"

// The first channel of the image in grey with the mask's outer contours in green and, when
// given and ok, the fitted ellipse in red (CV_8UC3).
cv::Mat overlay_image(const cv::Mat& image01, const cv::Mat& mask, const EllipseFit* fit = nullptr);
// The first channel of the image in grey with each foreground class 1..K-1 of `labels` blended
// in its class_colour (CV_8UC3).
cv::Mat label_overlay_image(const cv::Mat& image01, const cv::Mat& labels, int num_classes);
// BGR colour of class c >= 1 in overlays: green, red, blue, yellow, magenta, cyan, orange,
// purple, then hues spread by the golden angle.
cv::Scalar class_colour(int c);

// PNG bytes of `m`; throws Error naming `path` (the file it is meant for) when OpenCV cannot encode it.
std::vector<unsigned char> encode_png(const cv::Mat& m, const std::string& path);
// Writes bytes atomically (fs.h): the file appears complete or not at all.
void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes);
void write_png(const std::string& path, const cv::Mat& m);

// Outputs for other programs (`leanseg predict --format`, src/data/prediction_formats.cpp).
// tiff16: the mask's objects (8-connected components) numbered 1..N in a 16-bit single-page TIFF
// (<stem>_labels.tif), a label image napari and Fiji open as is; more than 65535 objects are an
// Error naming `path`.
cv::Mat object_labels16(const cv::Mat& mask, const std::string& path);
std::vector<unsigned char> encode_tiff(const cv::Mat& m, const std::string& path);
// geojson: the mask's outlines as a GeoJSON FeatureCollection QuPath imports (<stem>.geojson):
// one Polygon feature per object (outer ring, then its holes), in pixel coordinates of the
// image (x right, y down; a pixel (i, j) spans [i, i+1) x [j, j+1), rings through the centres of
// the boundary pixels), properties {"objectType": "annotation", "classification": {"name":
// class_name}}. Objects of one or two pixels become their pixels' square.
nlohmann::json mask_geojson(const cv::Mat& mask, const std::string& class_name = "Foreground");
const std::vector<std::string>& prediction_format_names();  // "png", "tiff16", "geojson"

// Command-line inputs → one job per image: a file, "a.tif+b.tif" (one file per channel of a
// multi-channel model), or a folder (its image files, sorted, HC18 "_Annotation" files skipped).
// Throws Error when nothing is left.
std::vector<std::vector<std::string>> expand_image_inputs(const std::vector<std::string>& inputs);
std::vector<std::string> split_plus(const std::string& s);  // "a.tif+b.tif" → {"a.tif", "b.tif"}

// The file read for each of the model's `channels` input channels: a job of one file serves every
// channel; otherwise it must give one file per channel. Throws Error naming the job otherwise.
std::vector<std::string> job_files(const std::vector<std::string>& job, size_t channels);

// What `leanseg predict` and `leanseg-infer` check before anything is written: every job has a
// usable number of files (job_files), every file exists, and no two jobs share the file stem of
// their first file (their outputs <stem>_mask.png, ... would overwrite each other): the error
// names both files.
void check_prediction_jobs(const std::vector<std::vector<std::string>>& jobs, size_t channels);

// An image's output PNGs, encoded in memory so that a failure leaves none of them behind:
// <stem>_mask.png (0/255), <stem>_prob.png (probability × 255) and, with `overlay`,
// <stem>_overlay.png (overlay_image with `fit`). For K-channel `prob` (multi-class): the label
// map <stem>_labels.png (class indices 0..K-1), <stem>_prob_<c>.png for every class c
// (probability × 255) and <stem>_overlay.png (label_overlay_image). `stem` includes the output folder.
using EncodedFiles = std::vector<std::pair<std::string, std::vector<unsigned char>>>;
EncodedFiles encode_prediction_pngs(const std::string& stem, const cv::Mat& image01, const cv::Mat& prob,
                                    const cv::Mat& mask, bool overlay, const EllipseFit* fit = nullptr);
void write_files(const EncodedFiles& files);  // write_bytes of each

// Runs `one` on every job in order. Without skip_errors the first error ends the run (an Error
// naming the job's first file). With skip_errors (`--skip-errors`) it is printed to stderr as
// "<program>: skipped <file>: <reason>" and the next job runs. Returns the number of jobs that failed.
size_t for_each_job(const std::vector<std::vector<std::string>>& jobs, bool skip_errors, const std::string& program,
                    const std::function<void(const std::vector<std::string>& job)>& one);
// Throws Error "N of M images failed (...)" when failed > 0: a run with skipped images exits non-zero.
void require_no_failed_jobs(size_t failed, size_t total);

}  // namespace leanseg
