// ReduceLROnPlateau and early stopping (src/train/schedule.h), epoch by epoch against the rules
// PyTorch documents: mode max, relative threshold 1e-4, cooldown 0, min_lr as a floor.
#include <gtest/gtest.h>

#include "train/schedule.h"

namespace leanseg {
namespace {

// patience 2, factor 0.5, min_lr 0.1 (from lr 1): feeds `dices` from epoch 1; returns lr after each.
std::vector<double> lrs_after(PlateauSchedule& s, const std::vector<double>& dices) {
  std::vector<double> lrs;
  int epoch = s.best_epoch + s.since_best;
  for (double d : dices) {
    s.observe(d, ++epoch, 2, 0.5, 0.1);
    lrs.push_back(s.lr);
  }
  return lrs;
}

TEST(PlateauSchedule, HalvesTheRateAfterMoreThanPatienceEpochsWithoutImprovementThenCountsAgain) {
  PlateauSchedule s;
  s.lr = 1;
  // Best 0.5 at epoch 1; epochs 2-3 are within patience, epoch 4 is the third bad one (> 2):
  // halved; the count restarts, so the next halving comes three bad epochs later (epoch 7).
  EXPECT_EQ(lrs_after(s, {0.5, 0.4, 0.5, 0.3, 0.5, 0.5, 0.5}), (std::vector<double>{1, 1, 1, 0.5, 0.5, 0.5, 0.25}));
  EXPECT_EQ(s.best_epoch, 1);
  EXPECT_EQ(s.since_best, 6);
  // An improvement resets both counts; the rate stays where it is.
  EXPECT_TRUE(s.observe(0.6, 8, 2, 0.5, 0.1));
  EXPECT_EQ(s.lr, 0.25);
  EXPECT_EQ(s.bad_epochs, 0);
  EXPECT_EQ(s.since_best, 0);
  EXPECT_EQ(s.best_epoch, 8);
}

TEST(PlateauSchedule, ImprovementsBelowTheRelativeThresholdDoNotCount) {
  PlateauSchedule s;
  s.lr = 1;
  EXPECT_TRUE(s.observe(0.8, 1, 2, 0.5, 0.1));
  EXPECT_FALSE(s.observe(0.8 * (1 + 0.5e-4), 2, 2, 0.5, 0.1));  // +0.005 %: below 1e-4 relative
  EXPECT_TRUE(s.observe(0.8 * (1 + 2e-4), 3, 2, 0.5, 0.1));
  EXPECT_EQ(s.best_epoch, 3);
}

TEST(PlateauSchedule, TheRateNeverGoesBelowMinLr) {
  PlateauSchedule s;
  s.lr = 1;
  const auto lrs = lrs_after(s, std::vector<double>(20, 0.5));  // one best, then 19 bad epochs
  EXPECT_EQ(lrs.back(), 0.1);
  EXPECT_EQ(*std::min_element(lrs.begin(), lrs.end()), 0.1);
  EXPECT_EQ(lrs[3], 0.5);  // 1 -> 0.5 -> 0.25 -> 0.125 -> 0.1 (floor), every third bad epoch
  EXPECT_EQ(lrs[6], 0.25);
  EXPECT_EQ(lrs[9], 0.125);
  EXPECT_EQ(lrs[12], 0.1);
}

TEST(PlateauSchedule, EarlyStoppingAfterPatienceEpochsWithoutANewBest) {
  PlateauSchedule s;
  s.lr = 1;
  lrs_after(s, {0.5, 0.4, 0.4});
  EXPECT_FALSE(s.should_stop(3));
  lrs_after(s, {0.4});
  EXPECT_TRUE(s.should_stop(3));  // three epochs since the best
  lrs_after(s, {0.9});
  EXPECT_FALSE(s.should_stop(3));  // a new best starts the count again
}

TEST(PlateauSchedule, StateSurvivesACheckpointRoundTrip) {
  PlateauSchedule s;
  s.lr = 1;
  lrs_after(s, {0.5, 0.4, 0.4, 0.4, 0.6, 0.3});
  PlateauSchedule r;
  r.from_json(nlohmann::json::parse(s.to_json().dump()));
  EXPECT_EQ(r.to_json(), s.to_json());
  // Resumed, it goes on exactly as the original does.
  EXPECT_EQ(lrs_after(r, {0.3, 0.3, 0.3}), lrs_after(s, {0.3, 0.3, 0.3}));
}

}  // namespace
}  // namespace leanseg
