#include "data/shard.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "leanseg/error.h"
#include "leanseg/fs.h"
#include "leanseg/prediction.h"

namespace leanseg {
namespace fs = std::filesystem;
namespace {

size_t parse_count(const std::string& text, const std::string& what) {
  require(!text.empty() && text.find_first_not_of("0123456789") == std::string::npos && text.size() < 10, what);
  return static_cast<size_t>(std::stoul(text));
}

std::string entry_path(const std::string& out_dir, const PredictionJob& job) {
  return (fs::path(out_dir) / (fs::path(job[0]).stem().string() + "_prediction.json")).string();
}

nlohmann::json read_json(const std::string& path) {
  const auto bytes = read_file_bytes(path);
  try {
    return nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::exception& e) {
    throw Error("'" + path + "' is not valid JSON (" + e.what() + ")");
  }
}

std::string shard_text(const ShardSpec& s) { return std::to_string(s.index) + "/" + std::to_string(s.count); }

void write_json(const std::string& path, const nlohmann::json& j) {
  atomic_write(path, [&](std::ostream& out) { out << j.dump(2) << "\n"; });
}

}  // namespace

ShardSpec parse_shard(const std::string& text, const std::string& option) {
  const std::string what = option + " '" + text + "': expected I/N with 0 <= I < N (e.g. 0/8 ... 7/8)";
  const auto slash = text.find('/');
  require(slash != std::string::npos, what);
  ShardSpec s{parse_count(text.substr(0, slash), what), parse_count(text.substr(slash + 1), what)};
  require(s.count >= 1 && s.index < s.count, what);
  return s;
}

size_t shard_of(const std::string& file, size_t count) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a: the same on every machine and build
  for (unsigned char c : fs::path(file).filename().string()) h = (h ^ c) * 1099511628211ull;
  return static_cast<size_t>(h % count);
}

std::string shard_manifest_path(const std::string& out_dir, const ShardSpec& s) {
  return (fs::path(out_dir) / ("shard-" + std::to_string(s.index) + "-of-" + std::to_string(s.count) + ".json")).string();
}

size_t run_prediction_jobs(const std::vector<PredictionJob>& jobs, const PredictionRunOptions& o,
                           const std::function<nlohmann::json(const PredictionJob&)>& one) {
  std::vector<PredictionJob> mine;
  for (const auto& job : jobs)
    if (shard_of(job[0], o.shard.count) == o.shard.index) mine.push_back(job);
  const bool keep_entries = o.shard.sharded() || o.skip_existing;
  nlohmann::json results = nlohmann::json::array(), failed = nlohmann::json::array();
  size_t skipped = 0;
  const size_t failures = for_each_job(mine, o.skip_errors, o.program, [&](const PredictionJob& job) {
    const std::string entry_file = entry_path(o.out_dir, job);
    if (o.skip_existing && fs::exists(entry_file)) {
      results.push_back(read_json(entry_file));
      ++skipped;
      return;
    }
    failed.push_back(job[0]);  // until it succeeds
    const nlohmann::json entry = one(job);
    if (keep_entries) write_json(entry_file, entry);
    failed.erase(failed.size() - 1);
    results.push_back(entry);
  });
  if (!o.shard.sharded()) {
    write_json((fs::path(o.out_dir) / "predictions.json").string(), results);
  } else {
    write_json(shard_manifest_path(o.out_dir, o.shard),
               {{"program", o.program}, {"shard", shard_text(o.shard)}, {"assigned", mine.size()},
                {"written", mine.size() - skipped - failures}, {"skipped_existing", skipped}, {"failed", failed},
                {"complete", failures == 0}, {"predictions", results}});
    std::cerr << o.program << ": shard " << shard_text(o.shard) << ": " << mine.size() << " of " << jobs.size()
              << " images, " << skipped << " already done, " << failures << " failed\n";
  }
  return failures;
}

nlohmann::json merge_prediction_shards(const std::string& out_dir, size_t count, const std::vector<PredictionJob>& expected) {
  require(count >= 1, "merge: the number of shards must be >= 1");
  std::vector<std::string> problems;
  std::map<std::string, size_t> shard_of_input;  // first file of each job → the shard listing it
  nlohmann::json all = nlohmann::json::array();
  for (size_t i = 0; i < count; ++i) {
    const ShardSpec s{i, count};
    const std::string path = shard_manifest_path(out_dir, s);
    if (!fs::exists(path)) {
      problems.push_back("shard " + shard_text(s) + ": no manifest " + path + " (not run, or not finished)");
      continue;
    }
    const nlohmann::json m = read_json(path);
    if (!m.value("complete", false))
      problems.push_back("shard " + shard_text(s) + ": incomplete, failed images " + m.value("failed", nlohmann::json::array()).dump());
    for (const auto& entry : m.value("predictions", nlohmann::json::array())) {
      const std::string input = entry.at("input").at(0).get<std::string>();
      if (shard_of(input, count) != i) problems.push_back("shard " + shard_text(s) + " lists " + input + ", which belongs to another shard");
      if (!shard_of_input.emplace(input, i).second) problems.push_back(input + " is listed twice");
      all.push_back(entry);
    }
  }
  for (const auto& job : expected)
    if (!shard_of_input.count(job[0]))
      problems.push_back(job[0] + ": in no shard (shard " + std::to_string(shard_of(job[0], count)) + "/" + std::to_string(count) + ")");
  if (!expected.empty()) {
    std::set<std::string> given;
    for (const auto& job : expected) given.insert(job[0]);
    for (const auto& [input, shard] : shard_of_input)
      if (!given.count(input)) problems.push_back(input + " (shard " + std::to_string(shard) + ") is not among the inputs given");
  }
  if (!problems.empty()) {
    std::string text;
    for (size_t i = 0; i < problems.size() && i < 20; ++i) text += "\n  " + problems[i];
    if (problems.size() > 20) text += "\n  ... and " + std::to_string(problems.size() - 20) + " more";
    throw Error("merge " + out_dir + ": " + std::to_string(problems.size()) + " problem(s), predictions.json not written:" + text);
  }
  std::sort(all.begin(), all.end(), [](const nlohmann::json& a, const nlohmann::json& b) { return a.at("input") < b.at("input"); });
  write_json((fs::path(out_dir) / "predictions.json").string(), all);
  return all;
}

}  // namespace leanseg
