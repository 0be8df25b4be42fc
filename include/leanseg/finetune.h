// Fine-tuning after compression (SPEC C6): the ordinary training loop with pruning masks kept.
// The training layer's: compression itself (compress.h) does not depend on training.
#pragma once
#include <vector>

#include "leanseg/compress.h"
#include "leanseg/model_file.h"
#include "leanseg/train.h"

namespace leanseg {

// Training options to fine-tune `m`: the recipe recorded in its provenance (extra.train_options:
// input size/mode, intensity, batch, loss, augmentation, split, seed) where present, else the
// defaults with the input size and mode of its preprocessing; lr 1e-4 (compression needs a
// nudge, not retraining); `epochs` epochs; no early stopping or time limit.
TrainOptions finetune_options(const LoadedModel& m, int epochs);

// Fine-tunes m.model in place on `data` with train_model (o.out_dir receives the run's files),
// re-applying `masks` after every optimizer step so pruned weights stay exactly zero. `model`
// is the run's best model (by validation Dice), masks re-applied, with m's provenance (extra).
// Throws Error when the data's channels differ from the model's.
struct FinetuneResult {
  LoadedModel model;
  TrainResult run;
};
FinetuneResult finetune(const LoadedModel& m, const Dataset& data, TrainOptions o, const std::vector<WeightMask>& masks);

}  // namespace leanseg
