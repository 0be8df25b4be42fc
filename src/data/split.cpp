// Group-aware train/validation split: near-duplicate images of one group never straddle it.
#include <algorithm>
#include <cmath>
#include <map>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "random.h"

namespace leanseg {
namespace {

struct Group {
  std::string name;
  std::vector<size_t> samples;
};

// Groups sorted by name, so the split does not depend on the order the samples were read in.
std::vector<Group> groups_of(const Dataset& d) {
  std::map<std::string, std::vector<size_t>> by_name;
  for (size_t i = 0; i < d.samples.size(); ++i) by_name[d.samples[i].group].push_back(i);
  std::vector<Group> groups;
  for (auto& [name, samples] : by_name) groups.push_back({name, std::move(samples)});
  return groups;
}

// Fisher–Yates on our own index draws (std::shuffle's draws are implementation-defined).
void shuffle_groups(std::vector<Group>& groups, std::mt19937_64& rng) {
  for (size_t i = groups.size(); i > 1; --i) std::swap(groups[i - 1], groups[data_detail::uniform_index(rng, i)]);
}

}  // namespace

Split grouped_split(const Dataset& d, double val_fraction, uint64_t seed) {
  require(val_fraction > 0 && val_fraction < 1,
          "validation fraction must be between 0 and 1 (exclusive), got " + std::to_string(val_fraction));
  std::vector<Group> groups = groups_of(d);
  std::mt19937_64 rng(seed);
  shuffle_groups(groups, rng);

  // Walk the shuffled groups and give each to validation while that brings the validation
  // sample count closer to the target; groups differ in size, so this counts samples.
  const double target = val_fraction * static_cast<double>(d.samples.size());
  std::vector<bool> to_val(groups.size(), false);
  size_t val_count = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const double with = static_cast<double>(val_count + groups[g].samples.size());
    if (std::abs(with - target) < std::abs(static_cast<double>(val_count) - target)) {
      to_val[g] = true;
      val_count += groups[g].samples.size();
    }
  }
  // Both sides need at least one group whenever that is possible.
  if (groups.size() >= 2) {
    const auto val_groups = std::count(to_val.begin(), to_val.end(), true);
    if (val_groups == 0) to_val.front() = true;
    if (val_groups == static_cast<long>(groups.size())) to_val.back() = false;
  }

  Split s;
  s.seed = seed;
  s.val_fraction = val_fraction;
  for (size_t g = 0; g < groups.size(); ++g) {
    auto& side = to_val[g] ? s.val : s.train;
    side.insert(side.end(), groups[g].samples.begin(), groups[g].samples.end());
  }
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.val.begin(), s.val.end());
  return s;
}

nlohmann::json Split::to_json(const Dataset& d) const {
  auto ids = [&](const std::vector<size_t>& indices) {
    std::vector<std::string> out;
    for (size_t i : indices) {
      require(i < d.samples.size(), "split refers to sample " + std::to_string(i) + " but the dataset has " +
                                        std::to_string(d.samples.size()));
      out.push_back(d.samples[i].id);
    }
    return out;
  };
  return {{"dataset_kind", d.kind}, {"seed", seed}, {"val_fraction", val_fraction},
          {"train", ids(train)}, {"val", ids(val)}};
}

}  // namespace leanseg
