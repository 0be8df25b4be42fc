// Who this process is in a data-parallel training run (torchrun's model: WORLD_SIZE processes,
// each with a RANK, meeting at MASTER_ADDR:MASTER_PORT), and the sampling rule every rank
// follows. No c10d here: the process group lives in distributed.cpp.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "leanseg/train.h"

namespace leanseg {

struct DistributedOptions {
  int world_size = 1, rank = 0, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // How long a rank may stop responding (no heartbeat: hung or dead) before every other rank
  // stops, naming it (the watchdog in distributed.cpp); collectives themselves time out 10 s later.
  double timeout_seconds = 120;
  // BatchNorm statistics over all ranks' batches (SyncBatchNorm); otherwise each rank's own.
  bool sync_batch_norm = false;
  // Gradient buckets (DDP's bucket_cap_mb): all-reduced as soon as all their gradients exist.
  double bucket_megabytes = 25;
  bool enabled() const { return world_size > 1; }
  bool is_main() const { return rank == 0; }
};

// The options from torchrun's environment variables (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT), or nullopt-like world_size 1 when WORLD_SIZE is unset. Throws Error naming the
// variable when one is malformed or inconsistent.
DistributedOptions distributed_options_from_environment();

// DistributedSampler's rule (drop_last=false): the epoch's order of `n` positions is padded to a
// multiple of `world_size` by repeating its beginning, and rank r takes positions r, r+W, r+2W,
// ... of the padded order. Returns the items' positions in the unpadded order: p mod n.
std::vector<size_t> shard_positions(size_t n, int rank, int world_size);

// train_model (leanseg/train.h) as one rank of a data-parallel run: each rank trains on its shard
// with the per-rank batch o.batch_size (global batch = world_size × batch_size, as with PyTorch's
// DDP), gradients are averaged over ranks, validation is sharded and reduced, and rank 0 alone
// writes the run folder. With world_size 1 it is train_model.
TrainResult train_model(const Dataset& data, const TrainOptions& o, const DistributedOptions& dist);

}  // namespace leanseg
