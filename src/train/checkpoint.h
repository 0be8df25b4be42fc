// Training checkpoints: model state, Adam moments and the trainer's own state (epoch, lr,
// scheduler counters, history) in one safetensors file, written atomically.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "leanseg/model.h"

namespace leanseg {

void save_checkpoint(const std::string& path, SegmentationModel model, torch::optim::Adam& opt,
                     const nlohmann::json& trainer_state);
// Restores model and optimizer in place; returns the trainer state. Throws Error naming the
// file when it does not match the model being trained.
nlohmann::json load_checkpoint(const std::string& path, SegmentationModel model, torch::optim::Adam& opt);
// The trainer state alone (tensors not read), e.g. to take the run's memory layout before the
// model is built.
nlohmann::json checkpoint_trainer_state(const std::string& path);

}  // namespace leanseg
