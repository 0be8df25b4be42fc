#include "leanseg/preprocessing.h"

#include <cmath>

#include "leanseg/error.h"
#include "leanseg/limits.h"

namespace leanseg {
namespace {

// An int field: get<int>() would wrap 2^32 + 64 to 64.
int int_field(const nlohmann::json& j, const char* key, int fallback, const std::string& where) {
  if (!j.contains(key)) return fallback;
  const auto v = json_int64(j.at(key));
  require(v && *v >= std::numeric_limits<int>::min() && *v <= std::numeric_limits<int>::max(),
          where + ": preprocessing field '" + key + "' should be an integer that fits in an int, got " + j.at(key).dump());
  return static_cast<int>(*v);
}

template <class T>
T field(const nlohmann::json& j, const char* key, const T& fallback, const std::string& where) {
  if (!j.contains(key)) return fallback;
  try {
    return j.at(key).get<T>();
  } catch (const std::exception&) {
    throw Error(where + ": preprocessing field '" + key + "' has the wrong type: " + j.at(key).dump());
  }
}

}  // namespace

nlohmann::json Preprocessing::to_json() const {
  nlohmann::json j = {{"channels", channels}, {"intensity", intensity}, {"max_value", max_value}, {"mean", mean},
                      {"std", std}, {"input_height", input_height}, {"input_width", input_width}, {"mode", mode},
                      {"threshold", threshold}};
  if (!intensity_range.empty()) j["intensity_range"] = intensity_range;
  if (resize != "stretch") j["resize"] = resize;
  if (hc_outline_offset_px != 0) j["hc_outline_offset_px"] = hc_outline_offset_px;
  return j;
}

Preprocessing Preprocessing::from_json(const nlohmann::json& j, const std::string& where) {
  require(j.is_object(), where + ": preprocessing is not a JSON object");
  Preprocessing p;
  p.channels = field(j, "channels", p.channels, where);
  p.intensity = field(j, "intensity", p.intensity, where);
  p.max_value = field(j, "max_value", p.max_value, where);
  p.mean = field(j, "mean", p.mean, where);
  p.std = field(j, "std", p.std, where);
  p.input_height = int_field(j, "input_height", p.input_height, where);
  p.input_width = int_field(j, "input_width", p.input_width, where);
  p.mode = field(j, "mode", p.mode, where);
  p.threshold = field(j, "threshold", p.threshold, where);
  p.intensity_range = field(j, "intensity_range", p.intensity_range, where);
  p.resize = field(j, "resize", p.resize, where);
  p.hc_outline_offset_px = field(j, "hc_outline_offset_px", p.hc_outline_offset_px, where);
  require(p.resize == "stretch" || p.resize == "letterbox", where + ": resize must be stretch or letterbox");
  require(p.intensity_range.empty() || (p.intensity_range.size() == 2 && std::isfinite(p.intensity_range[0]) &&
                                        std::isfinite(p.intensity_range[1]) && p.intensity_range[0] < p.intensity_range[1]),
          where + ": intensity_range must be [lo, hi] with lo < hi");
  require(!p.channels.empty(), where + ": preprocessing lists no input channels");
  for (const auto& c : p.channels)
    require(c == "gray" || c == "w1" || c == "w2" || c == "r" || c == "g" || c == "b",
            where + ": unknown input channel source '" + c + "' (gray, w1, w2, r, g, b)");
  require(p.intensity == "max" || p.intensity == "minmax", where + ": intensity must be 'max' or 'minmax'");
  require(p.max_value > 0, where + ": max_value must be > 0");
  require(p.std > 0, where + ": std must be > 0");
  check_image_size(p.input_height, p.input_width, where + ": preprocessing");
  require(p.mode == "resize" || p.mode == "pad" || p.mode == "tile", where + ": mode must be resize, pad or tile");
  require(p.threshold > 0 && p.threshold < 1, where + ": threshold must be in (0, 1)");
  // A line is a few pixels wide; more than 16 px is not an outline's half-width.
  require(std::isfinite(p.hc_outline_offset_px) && p.hc_outline_offset_px >= 0 && p.hc_outline_offset_px <= 16,
          where + ": hc_outline_offset_px must be in [0, 16] pixels, got " + std::to_string(p.hc_outline_offset_px));
  return p;
}

}  // namespace leanseg
