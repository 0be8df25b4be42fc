// The input pipeline a model expects, stored in every model file (torch-free).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace leanseg {

struct Preprocessing {
  // Where each input channel comes from: "gray" (8/16-bit grey image), "w1"/"w2" (BBBC010
  // channels), "r"/"g"/"b".
  std::vector<std::string> channels{"gray"};
  // "max": divide by max_value; "minmax": per-image min–max to [0, 1].
  std::string intensity = "max";
  double max_value = 255.0;
  // Float images (32-bit TIFF): {lo, hi} map to 0 and 1 (clamped); empty: each image's own
  // min..max. Written to the file only when set, so older files read unchanged.
  std::vector<double> intensity_range;
  // Applied after scaling to [0, 1]: (x − mean) / std. 0.5/0.5 gives the [−1, 1] range the
  // ImageNet MobileNetV2 weights expect.
  double mean = 0.5, std = 0.5;
  int input_height = 256, input_width = 256;
  // "resize": whole image resized to input size; "pad": native resolution padded to a multiple
  // of the model's size divisor; "tile": native resolution, overlapping tiles of input size.
  std::string mode = "resize";
  // How "resize" reaches the input size: "stretch" (each axis on its own, as before) or
  // "letterbox" (one scale keeping the aspect ratio, centred, zero-padded; predictions are cropped
  // to the image's area before going back to its size). Written only when "letterbox", so older
  // files read unchanged.
  std::string resize = "stretch";
  double threshold = 0.5;
  // Head circumference is measured this many pixels (at the image's own resolution) inside the
  // mask's fitted ellipse: the masks the model learned reach the outer edge of an annotated
  // line whose middle is the reference (HC18: ~0.8 px; outline_offset_px). The median over the
  // training images; written only when non-zero, so older files read unchanged (0).
  double hc_outline_offset_px = 0;

  nlohmann::json to_json() const;
  // Validates every field; `where` names the source in error messages.
  static Preprocessing from_json(const nlohmann::json& j, const std::string& where);
};

}  // namespace leanseg
