// Sharded prediction over very large image sets: `--shard I/N` gives each of N jobs (e.g. a
// scheduler's array tasks) the images whose file name hashes to I, so the N jobs cover a folder
// exactly once whatever order they run in; `--skip-existing` makes a re-submitted job resume;
// each shard writes a manifest, and merge_prediction_shards checks all N are complete.
// Used by `leanseg predict` and `leanseg-infer` alike. Torch-free.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace leanseg {

struct ShardSpec {
  size_t index = 0, count = 1;  // 0 <= index < count
  bool sharded() const { return count > 1; }
};

// "I/N" with 0 <= I < N; throws Error naming `option` otherwise.
ShardSpec parse_shard(const std::string& text, const std::string& option = "--shard");
// The shard of an image: FNV-1a (64-bit) of its file name, not its folder, modulo `count`.
size_t shard_of(const std::string& file, size_t count);
// OUT/shard-I-of-N.json
std::string shard_manifest_path(const std::string& out_dir, const ShardSpec& s);

struct PredictionRunOptions {
  std::string out_dir, program;
  ShardSpec shard;
  bool skip_existing = false, skip_errors = false;
};

using PredictionJob = std::vector<std::string>;

// Runs `one` (writes a job's output files, returns its predictions.json entry) on the jobs of
// this shard. With a shard or skip_existing, each finished job also gets its entry in
// OUT/<stem>_prediction.json, written after its images: a job whose entry file exists is done,
// and skip_existing reads it back instead of running the job again. Writes the shard's manifest
// (shard-I-of-N.json: assigned, written, skipped and failed images and every entry) or, unsharded,
// predictions.json, atomically. Returns the number of failed jobs (for require_no_failed_jobs).
size_t run_prediction_jobs(const std::vector<PredictionJob>& jobs, const PredictionRunOptions& o,
                           const std::function<nlohmann::json(const PredictionJob&)>& one);

// Checks that the `count` shard manifests of out_dir exist, are complete (no failed image) and
// list no image twice or in the wrong shard, and, when `expected` is given, that together they
// hold exactly its jobs. Writes out_dir/predictions.json (every entry, sorted by input) and
// returns it. Throws Error listing every problem found.
nlohmann::json merge_prediction_shards(const std::string& out_dir, size_t count,
                                       const std::vector<PredictionJob>& expected = {});

}  // namespace leanseg
