// `leanseg train --nproc N`: torchrun's local launcher. Starts N copies of the running command
// (same arguments) as workers of a data-parallel run, each with torchrun's environment
// (WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), and waits for them.
#pragma once
#include <string>

namespace leanseg::cli {

struct LaunchOptions {
  int nproc = 1, nnodes = 1, node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;  // 0: a free port of this machine (single node only)
  // After a worker fails, how long the others get to notice and stop on their own (their
  // collectives fail at once when a peer's process is gone) before they are terminated.
  double grace_seconds = 30;
};

// True when this process is a worker of a run (WORLD_SIZE is set, as torchrun and the launcher
// do): it must train, not launch.
bool is_launched_worker();

// A TCP port that was free on 127.0.0.1 a moment ago.
int free_local_port();

// Runs the workers; returns 0 when all succeeded, else prints which rank failed (and how) and
// returns non-zero after every worker has stopped. Throws Error when a worker cannot start.
int launch_workers(const LaunchOptions& l);

}  // namespace leanseg::cli
