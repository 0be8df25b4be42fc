// One rank's side of data-parallel training on LibTorch's own c10d: rendezvous through a
// TCPStore, collectives on ProcessGroupGloo, gradients averaged in buckets all-reduced from
// autograd hooks (overlapping the backward pass; why not DDP's Reducer: distributed.cpp), BatchNorm statistics optionally synchronised, and a store
// heartbeat that names the rank that died or hung when a collective fails. The c10d and Gloo
// headers stay in distributed.cpp.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "distributed_options.h"

namespace leanseg {

class DataParallel {
 public:
  // Joins the run (blocks until all world_size ranks arrived, at most timeout_seconds).
  explicit DataParallel(const DistributedOptions& o);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const;
  int world_size() const;
  bool is_main() const { return rank() == 0; }

  // Copies rank 0's values of `tensors` (parameters, buffers) into every rank's.
  void broadcast_from_main(const std::vector<torch::Tensor>& tensors);
  std::vector<double> broadcast_from_main(std::vector<double> values);
  // Element-wise sums over the ranks (in double).
  std::vector<double> sum(std::vector<double> values);
  void barrier();

  // Gradients of `trainable` are averaged over the ranks: each bucket's all-reduce starts during
  // backward, as soon as its gradients exist; after_backward waits for all and leaves the
  // averages in .grad. Every rank must run backward every step.
  void average_gradients_of(const std::vector<torch::Tensor>& trainable);
  void before_backward();
  void after_backward();
  // --sync-bn: every SyncableBatchNorm2d in training mode normalises with all ranks' batch
  // statistics, until this object is destroyed.
  void synchronise_batch_norm();

  // All-reduce of `bytes` of float32 gradients timed over `repeats` rounds (seconds per round).
  double time_all_reduce(int64_t bytes, int repeats);

  // Called with the exception that stopped this rank's training: when it came from another
  // rank (a collective failed because a peer died, hung or failed), returns an Error naming that
  // rank; otherwise records this rank's failure for the others and returns the error prefixed
  // with this rank.
  std::exception_ptr explain_failure(std::exception_ptr error);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace leanseg
