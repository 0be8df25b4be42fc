// `leanseg eval --model FILE --data DIR [--dataset K] [--split RUN/split.json --subset val] [--json]`
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli_common.h"
#include "commands.h"
#include "leanseg/error.h"

namespace leanseg::cli {
namespace {

struct EvalArgs {
  std::string model, data, dataset = "auto", split, subset = "val", out_json;
  bool json = false, per_image = false;
};

// Indices of the ids listed under `subset` in a split.json written by `leanseg train`.
std::vector<size_t> indices_from_split(const Dataset& d, const std::string& path, const std::string& subset) {
  std::ifstream in(path);
  require(static_cast<bool>(in), "--split '" + path + "': cannot open");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw Error("--split '" + path + "': not valid JSON (" + e.what() + ")");
  }
  require(j.contains(subset) && j[subset].is_array(), "--split '" + path + "': has no '" + subset + "' list");
  std::map<std::string, size_t> by_id;
  for (size_t i = 0; i < d.samples.size(); ++i) by_id[d.samples[i].id] = i;
  std::vector<size_t> idx;
  for (const auto& id : j[subset]) {
    auto it = by_id.find(id.get<std::string>());
    require(it != by_id.end(), "--split '" + path + "': image '" + id.get<std::string>() + "' is not in " + d.kind + " data");
    idx.push_back(it->second);
  }
  return idx;
}

void run_eval(const EvalArgs& a) {
  const LoadedModel m = load_model(a.model);
  const Dataset data = load_dataset(a.data, a.dataset, m.preprocessing.channels);
  require(data.channels == m.preprocessing.channels,
          "'" + a.model + "' expects channels " + nlohmann::json(m.preprocessing.channels).dump() + " but the data has " +
              nlohmann::json(data.channels).dump());
  const auto idx = a.split.empty() ? std::vector<size_t>{} : indices_from_split(data, a.split, a.subset);
  EvalReport rep = evaluate(m, data, idx);
  rep.file_bytes = static_cast<int64_t>(std::filesystem::file_size(a.model));
  if (a.json) std::cout << rep.to_json(a.per_image).dump(2) << "\n";
  else print_report_summary(rep, data.kind + (a.split.empty() ? "" : " (" + a.subset + " split)"));
}

}  // namespace

void add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Score a model file on a dataset at original resolution");
  cmd->add_option("--model,-m", a->model, "Model file")->required();
  cmd->add_option("--data", a->data, "Dataset folder")->required();
  cmd->add_option("--dataset", a->dataset, "hc18, bbbc010, folder or auto")->capture_default_str();
  cmd->add_option("--split", a->split, "split.json of a training run: score only one side of it");
  cmd->add_option("--subset", a->subset, "train or val (with --split)")->check(CLI::IsMember({"train", "val"}))->capture_default_str();
  cmd->add_flag("--json", a->json, "JSON output (keys dice, iou, hc_mae_mm, hd_mm, n_images, ...)");
  cmd->add_flag("--per-image", a->per_image, "Include per-image scores in the JSON");
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace leanseg::cli
