// All-reduce time and bandwidth on c10d's ProcessGroupGloo (the collective leanseg's
// data-parallel training runs every step), over loopback on this machine:
//   bench_allreduce [--world 2] [--repeats 20]
// forks `world` ranks, each sums float32 buffers of 4 KB ... 64 MB and rank 0 prints, per size,
// seconds per all-reduce, the algorithm bandwidth (bytes / time) and the bus bandwidth
// (2 (W-1)/W · bytes / time: what each rank sends and receives with a ring). docs/distributed.md
// uses these to model the multi-machine case.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "train/distributed.h"

int main(int argc, char** argv) {
  int world = 2, repeats = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--world")) world = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--repeats")) repeats = std::atoi(argv[i + 1]);
  }
  if (world < 2 || repeats < 1) {
    std::fprintf(stderr, "usage: bench_allreduce [--world W>=2] [--repeats N>=1]\n");
    return 2;
  }
  leanseg::DistributedOptions o;
  o.world_size = world;
  o.master_port = 29000 + static_cast<int>(getpid() % 2000);
  std::vector<pid_t> children;
  for (int r = 1; r < world; ++r) {  // before LibTorch starts any thread
    const pid_t pid = fork();
    if (pid == 0) {
      o.rank = r;
      children.clear();
      break;
    }
    children.push_back(pid);
  }
  try {
    leanseg::DataParallel dp(o);
    if (dp.is_main()) std::printf("ranks %d (loopback, Gloo)\n%12s %12s %14s %14s\n", world, "bytes", "ms", "algo MB/s", "bus MB/s");
    for (int64_t bytes = 4096; bytes <= (int64_t(64) << 20); bytes *= 4) {
      const double s = dp.time_all_reduce(bytes, bytes >= (int64_t(16) << 20) ? std::max(1, repeats / 4) : repeats);
      if (dp.is_main())
        std::printf("%12lld %12.3f %14.1f %14.1f\n", static_cast<long long>(bytes), s * 1e3, bytes / s / 1e6,
                    2.0 * (world - 1) / world * bytes / s / 1e6);
    }
    dp.barrier();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: %s\n", o.rank, e.what());
    return 1;
  }
  int code = 0;
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) code = 1;
  }
  return code;
}
