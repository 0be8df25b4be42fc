// Template implementation detail of SegmentationModelImpl::stage (kept out of model.h's body).
#pragma once
#include "leanseg/ops.h"

namespace leanseg {

template <class Fn>
torch::Tensor SegmentationModelImpl::stage(std::vector<StageRecord>* records, const char* name, Fn&& fn) {
  if (!records) return fn();
  FlopScope scope;
  torch::Tensor y = fn();
  records->push_back({name, y.sizes().vec(), scope.flops()});
  return y;
}

}  // namespace leanseg
