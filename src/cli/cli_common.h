// Helpers shared by the CLI sub-commands.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "util/cli_conventions.h"

#include "leanseg/data.h"
#include "leanseg/evaluate.h"
#include "leanseg/runtime.h"
#include "leanseg/train.h"

namespace leanseg::cli {

std::vector<std::string> split_channels(const std::string& csv);  // "w1,w2" → {"w1","w2"}
double parse_positive(const std::string& text, const std::string& option);
// num_classes as read_dataset: 0 infers it from the masks; a model's own number makes masks
// that do not fit it an error naming the file and its values.
Dataset load_dataset(const std::string& dir, const std::string& kind, const std::vector<std::string>& channels,
                     int num_classes = 0, const ImageReadOptions& read = {});

// --page, --channel and --intensity-range (multi-page, multi-channel and float TIFFs) of train,
// eval and predict.
struct ImageReadArgs {
  int page = -1, channel = -1;
  std::string intensity_range;  // "LO,HI"
};
void add_image_read_options(CLI::App* cmd, ImageReadArgs& a);
// The options given; a model's recorded intensity range when --intensity-range is not.
ImageReadOptions image_read_options(const ImageReadArgs& a, const std::vector<double>& model_range = {});
// --num-classes of `train` and --class-weights "w0,w1,..." (one per class, background first).
std::vector<double> parse_class_weights(const std::string& csv);
std::string format_seconds(double s);
void print_report_summary(const EvalReport& r, const std::string& what);
// Indices of the ids listed under `subset` ("train"/"val") in a split.json written by `leanseg train`.
std::vector<size_t> indices_from_split(const Dataset& d, const std::string& path, const std::string& subset);

// An exported runtime model (.lsr) rather than a model file (LibTorch).
bool is_runtime_file(const std::string& path);
// A .lsr file on the LibTorch-free engine at `precision` (fp32, bf16, int8) as a Predictor: its
// preprocessing and size divisor from the file; the engine lives in the predictor's function
// and, when `engine` is given, is shared through it (parameter count, FLOPs).
Predictor runtime_predictor(const std::string& path, const std::string& precision, bool winograd,
                            std::shared_ptr<runtime::Engine>* engine = nullptr);

// The value of the top-level --threads (0 = every core; build_app registers it).
int& threads_option();

// --model,-m with one description per kind of argument, the same in every subcommand;
// `in_channels` (when given) adds --in-channels for a model given by name.
enum class ModelArg {
  File,           // a model file (.safetensors)
  FileOrRuntime,  // a model file or an exported runtime model (.lsr)
  FileOrName,     // a model file or a registry name (random weights)
  Name,           // a registry name
};
CLI::Option* add_model_option(CLI::App* cmd, std::string& model, ModelArg accepts, int* in_channels = nullptr);
// Repeatable --model,-m FILE (bench).
CLI::Option* add_model_files_option(CLI::App* cmd, std::vector<std::string>& models, const std::string& use);

// --data DIR (what it is for: `use`) and --dataset KIND.
CLI::Option* add_dataset_options(CLI::App* cmd, std::string& data, std::string& dataset, const std::string& use);
// --split RUN/split.json and --subset train|val: score one side of a training run's split.
void add_split_options(CLI::App* cmd, std::string& split, std::string& subset);

// --qat BITS (8, 4 or 2): the one form of quantization-aware training (train, compress).
CLI::Option* add_qat_option(CLI::App* cmd, int& bits, const std::string& description);

// --tta none|h|hv (test-time mirroring, prediction.h) for `eval` and `predict`.
void add_tta_option(CLI::App* cmd, std::string& tta);
void add_postprocess_option(CLI::App* cmd, std::string& postprocess);

// Knowledge distillation flags shared by `train` and `compress` (fine-tuning):
// --distill TEACHER [--distill-alpha A] [--distill-temperature T].
struct DistillArgs {
  std::string teacher;
  double alpha = 0.5, temperature = 2.0;
};
void add_distill_options(CLI::App* cmd, DistillArgs& a);
void apply_distill(const DistillArgs& a, TrainOptions& o);

}  // namespace leanseg::cli
