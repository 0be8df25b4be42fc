// Options for training runs small enough for the unit suite, and the kill-and-resume check.
#pragma once
#include <gtest/gtest.h>

#include "leanseg/model_file.h"
#include "leanseg/tensor_io.h"
#include "leanseg/train.h"

namespace leanseg::test {

// The tiny efficient U-Net at 64×64, 3 epochs of batch 8.
inline TrainOptions tiny_options(const std::string& out) {
  TrainOptions o;
  o.model = "efficient-unet";
  o.model_options = {{"channels", {8, 8, 16, 16, 32, 32}}, {"reduction", 2}, {"attention_heads", 2}};
  o.input_size = 64;
  o.batch_size = 8;
  o.epochs = 3;
  o.lr = 3e-3;
  o.pos_weight_auto = true;
  o.progress = false;
  o.out_dir = out;
  return o;
}

// What a crash and `train --resume` do: `started` runs until it is killed after its first epoch,
// then `resumed` (the same out_dir) continues with resume on. Expects its last weights to be
// bit-identical to those of the uninterrupted run in `reference_dir`; returns the resumed model.
inline LoadedModel train_killed_then_resumed(const Dataset& d, TrainOptions started, TrainOptions resumed,
                                             const std::string& reference_dir) {
  started.stop_after_epochs = 1;
  train_model(d, started);
  resumed.resume = true;
  train_model(d, resumed);
  LoadedModel a = load_model(reference_dir + "/last.safetensors"), b = load_model(resumed.out_dir + "/last.safetensors");
  const auto sa = state_dict(*a.model), sb = state_dict(*b.model);
  EXPECT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size() && i < sb.size(); ++i)
    EXPECT_TRUE(torch::equal(sa[i].second, sb[i].second)) << resumed.out_dir << " " << sa[i].first;
  return b;
}

}  // namespace leanseg::test
