// Dataset kind detection and the reader dispatch used by the CLI.
#include "image_io.h"
#include "leanseg/data.h"
#include "leanseg/error.h"

namespace leanseg {

std::string detect_dataset_kind(const std::string& dir) {
  using data_detail::is_directory;
  using data_detail::is_file;
  require(is_directory(dir), "dataset folder '" + dir + "' does not exist");
  if (is_directory(dir + "/training_set") && is_file(dir + "/training_set_pixel_size_and_HC.csv")) return "hc18";
  if (is_directory(dir + "/BBBC010_v2_images")) return "bbbc010";
  if (is_directory(dir + "/images") && is_directory(dir + "/masks")) return "folder";
  throw Error("cannot tell the dataset layout of '" + dir +
              "'. Expected one of: HC18 (training_set/*.png with *_Annotation.png, and "
              "training_set_pixel_size_and_HC.csv); BBBC010 (BBBC010_v2_images/*.tif and "
              "BBBC010_v1_foreground/<WELL>_binary.png); folder (images/<name>.png|tif|jpg and masks/<name>.png)");
}

Dataset read_dataset(const std::string& dir, const std::string& kind, const std::vector<std::string>& channels,
                     int num_classes, const ImageReadOptions& read) {
  const std::string k = kind == "auto" ? detect_dataset_kind(dir) : kind;
  require(k == "folder" || num_classes == 0 || num_classes == 2,
          "'" + dir + "' is a " + k + " dataset, whose masks are binary (2 classes); " + std::to_string(num_classes) +
              " classes need label masks in a folder dataset (images/ + masks/)");
  if (k == "bbbc010") return channels.empty() ? read_bbbc010(dir) : read_bbbc010(dir, channels);
  require(k == "hc18" || k == "folder",
          "unknown dataset kind '" + kind + "' (expected auto, hc18, bbbc010 or folder)");
  // Other kinds have fixed channels; accept a request only if it names them.
  auto check_channels = [&](const std::vector<std::string>& actual) {
    require(channels.empty() || channels == actual,
            "channel selection applies only to bbbc010 datasets; '" + dir + "' is a " + k +
                " dataset with channels " + nlohmann::json(actual).dump());
  };
  if (k == "hc18") {
    check_channels({"gray"});  // before the slow read
    return read_hc18(dir);
  }
  Dataset d = read_folder(dir, num_classes, read);
  check_channels(d.channels);
  return d;
}

}  // namespace leanseg
