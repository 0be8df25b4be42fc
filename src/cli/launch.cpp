#include "launch.h"

#include "util/cli_conventions.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>
#include <vector>

#include "leanseg/error.h"
#include "leanseg/process.h"

namespace leanseg::cli {
namespace {

using Clock = std::chrono::steady_clock;

// This process's own arguments (argv[0] included), as the kernel recorded them.
std::vector<std::string> own_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  require(bool(in), "cannot read /proc/self/cmdline to start the workers");
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  return args;
}

bool has_argument(const std::vector<std::string>& args, const std::string& name) {
  for (const auto& a : args)
    if (a == name || a.rfind(name + "=", 0) == 0) return true;
  return false;
}

pid_t start_worker(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(std::string("cannot start a worker: fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execv("/proc/self/exe", argv.data());
    std::fprintf(stderr, "leanseg train: cannot start a worker: exec failed: %s\n", std::strerror(errno));
    ::_exit(127);
  }
  return pid;
}

}  // namespace

bool is_launched_worker() { return std::getenv("WORLD_SIZE") != nullptr; }

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  require(fd >= 0, std::string("cannot open a socket to find a free port: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  require(ok, std::string("cannot find a free port on 127.0.0.1: ") + std::strerror(errno));
  return ntohs(addr.sin_port);
}

int launch_workers(const LaunchOptions& l) {
  require_usage(l.nproc >= 1 && l.nnodes >= 1 && l.node_rank >= 0 && l.node_rank < l.nnodes,
                "train: --node-rank must be in [0, --nnodes)");
  require_usage(l.master_port > 0 || l.nnodes == 1, "train: --master-port is required with --nnodes > 1");
  const int port = l.master_port > 0 ? l.master_port : free_local_port();
  std::vector<std::string> args = own_arguments();
  // One intra-op thread per worker's share of the cores unless --threads says otherwise (as
  // torchrun sets OMP_NUM_THREADS): N workers with all cores each would oversubscribe them.
  if (!has_argument(args, "--threads")) {
    const int threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / l.nproc);
    args.insert(args.begin() + 1, {"--threads", std::to_string(threads)});
  }
  const int world = l.nnodes * l.nproc;
  std::map<pid_t, int> running;  // pid → rank
  for (int local = 0; local < l.nproc; ++local) {
    const int rank = l.node_rank * l.nproc + local;
    const std::map<std::string, std::string> env = {
        {"WORLD_SIZE", std::to_string(world)}, {"RANK", std::to_string(rank)}, {"LOCAL_RANK", std::to_string(local)},
        {"LOCAL_WORLD_SIZE", std::to_string(l.nproc)}, {"MASTER_ADDR", l.master_addr}, {"MASTER_PORT", std::to_string(port)}};
    running[start_worker(args, env)] = rank;
  }
  int exit_code = 0;
  Clock::time_point deadline = Clock::time_point::max();
  bool terminated = false;
  while (!running.empty()) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, exit_code ? WNOHANG : 0);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) break;  // no children left
    if (pid > 0) {
      const auto it = running.find(pid);
      if (it == running.end()) continue;
      const int rank = it->second;
      running.erase(it);
      if (!exited_ok(status) && exit_code == 0) {
        exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        std::cerr << "leanseg train: worker rank " << rank << " (pid " << pid << ") " << status_text(status);
        if (!running.empty()) std::cerr << "; the other ranks stop within " << l.grace_seconds << " s";
        std::cerr << "\n";
        deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(l.grace_seconds * 1000));
      }
      continue;
    }
    // A worker failed and others are still running: give them the grace period, then end them.
    if (Clock::now() > deadline) {
      for (const auto& [p, rank] : running) {
        std::cerr << "leanseg train: ending worker rank " << rank << " (pid " << p << ")\n";
        ::kill(p, terminated ? SIGKILL : SIGTERM);
      }
      deadline = Clock::now() + std::chrono::seconds(5);
      terminated = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return exit_code;
}

}  // namespace leanseg::cli
