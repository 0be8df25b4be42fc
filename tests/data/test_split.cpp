#include <map>
#include <set>

#include "leanseg/data.h"
#include "leanseg/error.h"
#include "test_util.h"

namespace leanseg {
namespace {

// 120 groups of 1–4 samples each, like HC18 exams (images are not needed for splitting).
Dataset grouped_dataset() {
  Dataset d;
  d.kind = "hc18";
  for (int g = 0; g < 120; ++g) {
    const int n = 1 + (g * 7) % 4;
    for (int k = 0; k < n; ++k) {
      Sample s;
      s.group = "g" + std::to_string(g);
      s.id = s.group + "_" + std::to_string(k);
      d.samples.push_back(s);
    }
  }
  return d;
}

std::set<std::string> groups_of(const Dataset& d, const std::vector<size_t>& indices) {
  std::set<std::string> groups;
  for (size_t i : indices) groups.insert(d.samples[i].group);
  return groups;
}

TEST(GroupedSplit, NoGroupOnBothSidesAndEverySampleOnce) {
  const Dataset d = grouped_dataset();
  for (uint64_t seed : {0ull, 1ull, 42ull}) {
    const Split s = grouped_split(d, 0.2, seed);
    const auto train = groups_of(d, s.train), val = groups_of(d, s.val);
    for (const auto& g : val) EXPECT_EQ(train.count(g), 0u) << g;
    std::vector<size_t> all = s.train;
    all.insert(all.end(), s.val.begin(), s.val.end());
    std::sort(all.begin(), all.end());
    ASSERT_EQ(all.size(), d.samples.size());
    for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], i);
    // ~20 % of the samples, within one group's size.
    EXPECT_NEAR(static_cast<double>(s.val.size()), 0.2 * d.samples.size(), 4.0) << "seed " << seed;
  }
}

TEST(GroupedSplit, IsDeterministicAndDependsOnTheSeed) {
  const Dataset d = grouped_dataset();
  const Split a = grouped_split(d, 0.25, 7), b = grouped_split(d, 0.25, 7), c = grouped_split(d, 0.25, 8);
  EXPECT_EQ(a.val, b.val);
  EXPECT_EQ(a.train, b.train);
  EXPECT_NE(a.val, c.val);
}

TEST(GroupedSplit, DoesNotDependOnSampleOrder) {
  const Dataset d = grouped_dataset();
  Dataset reversed = d;
  std::reverse(reversed.samples.begin(), reversed.samples.end());
  std::set<std::string> val_ids, reversed_val_ids;
  for (size_t i : grouped_split(d, 0.3, 5).val) val_ids.insert(d.samples[i].id);
  for (size_t i : grouped_split(reversed, 0.3, 5).val) reversed_val_ids.insert(reversed.samples[i].id);
  EXPECT_EQ(val_ids, reversed_val_ids);
}

TEST(GroupedSplit, TwoGroupsGiveOneToEachSide) {
  Dataset d;
  for (const char* g : {"a", "a", "a", "b"}) {
    Sample s;
    s.group = g;
    s.id = g + std::to_string(d.samples.size());
    d.samples.push_back(s);
  }
  for (double f : {0.01, 0.5, 0.99}) {
    const Split s = grouped_split(d, f, 3);
    EXPECT_FALSE(s.train.empty()) << f;
    EXPECT_FALSE(s.val.empty()) << f;
  }
}

TEST(GroupedSplit, JsonListsIdsSeedAndFraction) {
  const Dataset d = grouped_dataset();
  const Split s = grouped_split(d, 0.2, 11);
  const auto j = s.to_json(d);
  EXPECT_EQ(j.at("seed").get<uint64_t>(), 11u);
  EXPECT_DOUBLE_EQ(j.at("val_fraction").get<double>(), 0.2);
  ASSERT_EQ(j.at("val").size(), s.val.size());
  ASSERT_EQ(j.at("train").size(), s.train.size());
  EXPECT_EQ(j.at("val")[0].get<std::string>(), d.samples[s.val[0]].id);
}

TEST(GroupedSplit, RejectsFractionsOutsideZeroOne) {
  const Dataset d = grouped_dataset();
  EXPECT_ERROR_CONTAINS(grouped_split(d, 0.0, 1), "validation fraction must be between 0 and 1");
  EXPECT_ERROR_CONTAINS(grouped_split(d, 1.0, 1), "validation fraction must be between 0 and 1");
}

}  // namespace
}  // namespace leanseg
