// The learning-rate schedule and early stopping of the training loop (seed §8, spec T2):
// ReduceLROnPlateau on validation Dice as PyTorch defines it (mode max, relative threshold 1e-4,
// cooldown 0: after more than `patience` epochs without improvement the rate is multiplied by
// `factor`, not below `min_lr`, and the count starts again), and early stopping after
// `early_stop_patience` epochs without a new best. Kept apart from the trainer so both rules are
// tested on their own (tests/train/test_schedule.cpp); its state is saved in checkpoints.
#pragma once
#include <algorithm>
#include <nlohmann/json.hpp>

namespace leanseg {

struct PlateauSchedule {
  double lr = 0, best = -1;
  int bad_epochs = 0, since_best = 0, best_epoch = 0;

  nlohmann::json to_json() const {
    return {{"lr", lr}, {"best", best}, {"bad_epochs", bad_epochs}, {"since_best", since_best}, {"best_epoch", best_epoch}};
  }
  void from_json(const nlohmann::json& j) {
    lr = j.at("lr"), best = j.at("best"), bad_epochs = j.at("bad_epochs"), since_best = j.at("since_best");
    best_epoch = j.at("best_epoch");
  }
  // Records epoch `epoch`'s validation Dice; returns true when it is a new best.
  bool observe(double dice, int epoch, int patience, double factor, double min_lr) {
    const bool improved = dice > best * (1 + 1e-4) || best < 0;
    if (improved) {
      best = dice, best_epoch = epoch, bad_epochs = 0, since_best = 0;
    } else {
      ++since_best;
      if (++bad_epochs > patience) {
        lr = std::max(min_lr, lr * factor);
        bad_epochs = 0;
      }
    }
    return improved;
  }
  bool should_stop(int early_stop_patience) const { return since_best >= early_stop_patience; }
};

}  // namespace leanseg
