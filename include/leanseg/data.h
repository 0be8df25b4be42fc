// Datasets (D1–D3), splits, augmentation (D4) and image geometry. Torch-free: images are
// OpenCV matrices. Every reader validates its files and throws leanseg::Error naming the file
// and the problem (missing mask, size mismatch, empty or non-binary mask, corrupt image, bad
// CSV row).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <random>
#include <string>
#include <vector>

namespace leanseg {

// Which plane of a multi-page or multi-channel TIFF to read, and how float pixels map to [0, 1]
// (`--page`, `--channel`, `--intensity-range` of train, eval, predict and leanseg-infer).
struct ImageReadOptions {
  // Page (directory) of a multi-page TIFF, from 0. -1: not given, page 0 with a warning for
  // multi-page files. Other formats have one page (a page > 0 is refused naming the file).
  int page = -1;
  // Sample of a TIFF, in file order from 0 (R, G, B for colour). -1: not given; a TIFF with
  // several non-colour channels (microscopy) is then refused naming the file and its channel count.
  int channel = -1;
  // {lo, hi}: float pixels map lo -> 0 and hi -> 1, clamped. Empty: each float image's own
  // min..max (with a note). 8- and 16-bit images keep their usual scaling.
  std::vector<double> intensity_range;
};
// "LO,HI" with LO < HI, finite; throws Error quoting the text and `option`.
std::vector<double> parse_intensity_range(const std::string& text, const std::string& option);

struct Sample {
  std::string id;          // file stem: "010_2HC", "A01", ...
  std::string group;       // samples of one group stay in one split: HC18 exam ("010"), BBBC010 well
  std::string image_path;  // first source file (for reports)
  cv::Mat image;           // CV_32FC(C), intensities scaled to [0, 1] (see Dataset::max_value)
  cv::Mat mask;            // CV_8UC1 class indices 0..K-1 (binary: 0/1), same size as image; empty if unlabelled
  double pixel_size_mm = 0;  // HC18: mm per pixel (0 when unknown)
  double hc_mm = 0;          // HC18: reference head circumference in mm (0 when unknown)
  // HC18: how far the filled mask's edge lies outside the drawn outline's middle, where the
  // reference HC is measured (outline_offset_px; 0 when the mask is not filled from a line).
  double outline_offset_px = 0;
};

struct Dataset {
  std::string kind;                   // "hc18", "bbbc010", "folder", "synthetic-ultrasound", "synthetic-worms", "synthetic-classes"
  std::vector<std::string> channels;  // channel sources, e.g. {"gray"}, {"w2"}, {"w1", "w2"}
  double max_value = 255;             // raw intensity that maps to 1.0 (255 8-bit, 4095 BBBC010)
  int num_classes = 2;                // K, background included; 2 = binary masks 0/1
  std::vector<double> intensity_range;  // float images: {lo, hi} they were mapped with (empty: own min..max)
  std::vector<Sample> samples;
};

// HC18 layout: DIR/training_set/NNN[_kHC].png + NNN[_kHC]_Annotation.png and
// DIR/training_set_pixel_size_and_HC.csv (CRLF, no final newline). The outline annotation is
// filled (outline pixels count as head). Group = the 3-digit exam prefix.
Dataset read_hc18(const std::string& dir);

// BBBC010 layout: DIR/BBBC010_v2_images/*_<WELL>_<w1|w2>_<GUID>.tif (16-bit, 12-bit values,
// one PackBits file) and DIR/BBBC010_v1_foreground/<WELL>_binary.png (RGBA, any channel > 0 is
// worm). `channels` ⊆ {"w1","w2"} in the order given. Group = well.
Dataset read_bbbc010(const std::string& dir, const std::vector<std::string>& channels = {"w2"});

// Plain folders: DIR/images/<stem>.<png|tif|jpg> and DIR/masks/<stem>.<png|tif|tiff>, 8- or
// 16-bit. num_classes 2: binary masks (0 and one foreground value, e.g. 0/1 or 0/255; masks with
// more values are refused naming the file and the values). num_classes K >= 3: single-channel
// label masks with values 0..K-1 (others refused likewise). num_classes 0: K from the masks:
// binary when each mask has at most one foreground value that is not a class index (0/1 and
// 0/255 masks may mix), else labels with K = the largest value + 1 (<= kMaxClasses).
// 8-bit images scale by 255, 16-bit by 65535. Group = stem.
// Multi-page/multi-channel/float TIFF images follow `read` (a page given applies to multi-page masks
// too; single-page masks are read whole); float images are mapped by read.intensity_range.
Dataset read_folder(const std::string& dir, int num_classes = 0, const ImageReadOptions& read = {});

// "hc18", "bbbc010" or "folder" from the layout; throws Error describing the expected layouts.
std::string detect_dataset_kind(const std::string& dir);
// kind "auto" detects. `channels` only applies to bbbc010 (empty = default). `num_classes` as
// read_folder says (0: from the masks); HC18 and BBBC010 are binary (2), and asking them for
// more classes is an error.
// `read` applies to folder datasets (read_folder).
Dataset read_dataset(const std::string& dir, const std::string& kind = "auto",
                     const std::vector<std::string>& channels = {}, int num_classes = 0,
                     const ImageReadOptions& read = {});

// Synthetic data (D3), deterministic for a seed. Ultrasound-like: a bright elliptical skull ring
// with speckle noise on a dark fan; mask = filled ellipse; pixel_size_mm and hc_mm set.
// Worm-like: thin bright curved tubes on a textured background; mask = worms.
Dataset make_synthetic_ultrasound(int count, int height, int width, uint64_t seed);
Dataset make_synthetic_worms(int count, int height, int width, uint64_t seed);
// Writes a dataset to disk in a layout read_dataset reads back (`leanseg synth`): samples with a
// pixel size and HC (synthetic ultrasound) in the HC18 layout (DIR/training_set/NNN_HC.png,
// NNN_HC_Annotation.png with the mask's outline, the pixel-size CSV), the others in the folder
// layout (DIR/images/<id>.png, DIR/masks/<id>.png, 0/255). Images are 8-bit PNGs (intensities
// × 255, rounded). Refuses a DIR that exists and is not empty; every file is written atomically.
void write_dataset(const Dataset& d, const std::string& dir);

// Three classes (num_classes 3): background 0, a filled ellipse 1 and a thick ring 2 inside it
// (35%..70% of its semi-axes), each class at its own mean intensity under Gaussian noise.
Dataset make_synthetic_classes(int count, int height, int width, uint64_t seed);

// Reads one image for inference as CV_32FC(channels.size()) scaled to [0, 1]: intensity "max"
// divides by max_value for files of the bit depth max_value belongs to (8-bit for <= 255,
// 16-bit above) and by the file's own maximum (255 or 65535) for the other depth; float files
// map through read.intensity_range, else their own min..max (with a note); "minmax" rescales per
// image. "gray" converts colour to grey; "r"/"g"/"b" pick a colour channel. `read` chooses the
// page and channel of multi-page/multi-channel TIFFs. The same loader as the dataset readers:
// throws Error naming the file if it is unreadable, its page or channel does not exist, or it has
// several non-colour channels and none was chosen.
cv::Mat read_input_image(const std::vector<std::string>& paths, const std::vector<std::string>& channels,
                         const std::string& intensity, double max_value, const ImageReadOptions& read = {});

// mm per pixel recorded in an image file's header: DICOM's pixel spacing (ultrasound regions
// included), OME-TIFF's PhysicalSizeX; 0 for files that record none (PNG, JPEG, plain TIFF).
// Throws Error naming an unreadable DICOM or TIFF file.
double image_pixel_size_mm(const std::string& path);

// Deterministic train/validation split by group: val gets ~val_fraction of the groups.
struct Split {
  std::vector<size_t> train, val;  // indices into Dataset::samples
  uint64_t seed = 0;
  double val_fraction = 0;
  nlohmann::json to_json(const Dataset& d) const;  // lists ids of both sides
};
Split grouped_split(const Dataset& d, double val_fraction, uint64_t seed);

// D4 augmentation, image and mask in sync (mask keeps exactly its values: nearest neighbour): horizontal flip (p),
// rotation ±rotate_deg (p), scale ±scale (p), translation ±translate of the size (p).
struct AugmentOptions {
  double flip_p = 0.5;
  double rotate_deg = 20, rotate_p = 0.5;
  double scale = 0.1, scale_p = 0.5;
  double translate = 0.1, translate_p = 0.5;
  // Also turn by k quarter turns, k uniform in 0..3: with the flip, all eight symmetries of the
  // square. For images without a canonical orientation (microscopy), and the mirroring
  // test-time augmentation along both axes (`--tta hv`) needs it.
  bool rot90 = false;
};
void augment(cv::Mat& image, cv::Mat& mask, const AugmentOptions& o, std::mt19937_64& rng);

// Geometry used by training and inference.
cv::Mat resize_image(const cv::Mat& image, int height, int width);  // bilinear (area when shrinking)
cv::Mat resize_mask(const cv::Mat& mask, int height, int width);    // nearest, stays 0/1
// Letterboxing (spec D4: "resize/letterbox to the model size"): one scale for both axes,
// min(height / rows, width / cols), the scaled image centred on a zero canvas of height x width.
struct Letterbox {
  cv::Rect content;  // where the scaled image sits in the canvas
  int height = 0, width = 0;
};
Letterbox letterbox_geometry(int rows, int cols, int height, int width);
cv::Mat letterbox_image(const cv::Mat& image, int height, int width);  // bilinear/area as resize_image, zero padding
cv::Mat letterbox_mask(const cv::Mat& mask, int height, int width);    // nearest, background padding
// A model output on the letterbox canvas back to the image's own size: the content rectangle
// (the padding dropped), resized bilinearly to `original`.
cv::Mat unletterbox(const cv::Mat& canvas_output, cv::Size original);
// Pads bottom/right with zeros to a multiple of `divisor` (reflect padding for images).
cv::Mat pad_to_multiple(const cv::Mat& m, int divisor, bool reflect);
// Random crop of size h×w (pads first if smaller); with prob foreground_p the crop is centred
// near a random foreground pixel so thin structures are seen often.
void random_crop(const cv::Mat& image, const cv::Mat& mask, int h, int w, double foreground_p,
                 std::mt19937_64& rng, cv::Mat& image_out, cv::Mat& mask_out);

}  // namespace leanseg
