// `leanseg info [--model NAME|FILE] [--input-size N] [--json]`: per-stage shapes, parameters and
// FLOPs. Without --model: a one-line summary of every model in the zoo.
#include <cstdio>
#include <iostream>

#include "cli_common.h"
#include "commands.h"
#include "leanseg/compress.h"
#include "leanseg/error.h"
#include "leanseg/info.h"
#include "leanseg/model_file.h"

namespace leanseg::cli {
namespace {

struct InfoArgs {
  std::string model;
  int input_size = 256;
  int in_channels = 1;
  bool json = false;
};

void print_zoo(const InfoArgs& a) {
  nlohmann::json all = nlohmann::json::array();
  if (!a.json)
    std::printf("%-30s %12s %12s %10s %10s  %s\n", "model", "params", "trainable", "GFLOPs", "fp32 MB", "description");
  for (const auto& name : model_names()) {
    const auto s = summarize(create_model(name, a.in_channels), a.input_size, a.input_size);
    if (a.json) {
      all.push_back(s.to_json());
      continue;
    }
    std::printf("%-30s %12lld %12lld %10.3f %10.2f  %s\n", name.c_str(), static_cast<long long>(s.params_total),
                static_cast<long long>(s.params_trainable), s.flops / 1e9, s.fp32_bytes / 1e6,
                model_description(name).c_str());
  }
  if (a.json) std::cout << all.dump(2) << "\n";
  else std::printf("(input %dx%dx%d; `leanseg info --model NAME` shows the stages)\n", a.in_channels, a.input_size, a.input_size);
}

void run_info(const InfoArgs& a) {
  require_usage(a.input_size > 0 && a.input_size % 32 == 0,
                "--input-size " + std::to_string(a.input_size) + " must be a positive multiple of 32");
  if (a.model.empty()) return print_zoo(a);
  LoadedModel m = open_model(a.model, a.in_channels);
  const auto s = summarize(m.model, a.input_size, a.input_size);
  const std::string compression = describe_compression(m);
  if (a.json) {
    auto j = s.to_json();
    if (m.extra.is_object() && m.extra.contains("compression")) j["compression"] = m.extra["compression"];
    if (!m.storage.is_null()) j["storage"] = {{"kind", m.storage["kind"]}, {"per_channel", m.storage["per_channel"]}};
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << s.to_table();
  if (!compression.empty()) std::cout << "compression: " << compression << "\n";
}

}  // namespace

void add_info(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  auto* cmd = app.add_subcommand("info", "Per-stage output shapes, parameters and FLOPs of a model");
  add_model_option(cmd, args->model, ModelArg::FileOrName, &args->in_channels)
      ->description("Model file or registry name (default: a summary of every registered model)");
  cmd->add_option("--input-size", args->input_size, "Square input size (multiple of 32)")->capture_default_str();
  cmd->add_flag("--json", args->json, "Machine-readable output");
  cmd->callback([args] { run_info(*args); });
}

}  // namespace leanseg::cli
