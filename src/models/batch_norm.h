// BatchNorm2d whose training-mode statistics a data-parallel run can compute over all of its
// processes (--sync-bn). Same parameters, buffers and state-dict names as torch::nn::BatchNorm2d
// (it is one: dynamic_cast and Module::as<BatchNorm2dImpl> find it), so model files and
// checkpoints do not change. Without an installed synchroniser it is plain BatchNorm2d.
#pragma once
#include <functional>

#include <torch/torch.h>

namespace leanseg {

class SyncableBatchNorm2dImpl : public torch::nn::BatchNorm2dImpl {
 public:
  explicit SyncableBatchNorm2dImpl(int64_t features) : torch::nn::BatchNorm2dImpl(features) {}
  explicit SyncableBatchNorm2dImpl(const torch::nn::BatchNorm2dOptions& o) : torch::nn::BatchNorm2dImpl(o) {}
  torch::Tensor forward(const torch::Tensor& x);
};
TORCH_MODULE(SyncableBatchNorm2d);

// Computes a training-mode forward of `bn` with statistics over every process (and updates its
// running statistics). One per process: a process is one rank of one run.
using BatchNormSynchroniser = std::function<torch::Tensor(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x)>;
// Installs (or, with an empty function, removes) the synchroniser used by every
// SyncableBatchNorm2d in training mode. Returns the previous one.
BatchNormSynchroniser set_batch_norm_synchroniser(BatchNormSynchroniser sync);

}  // namespace leanseg
