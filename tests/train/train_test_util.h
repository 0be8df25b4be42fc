// Options for training runs small enough for the unit suite.
#pragma once
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

}  // namespace leanseg::test
