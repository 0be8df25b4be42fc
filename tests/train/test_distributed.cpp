// Data-parallel training (src/train/distributed.cpp, src/cli/launch.cpp): the sampler's shard
// rule, equivalence of 2 ranks × batch B/2 with 1 process × batch B, a run over two node ranks
// on loopback, and workers that die or hang.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "leanseg/error.h"
#include "leanseg/model_file.h"
#include "leanseg/safetensors.h"
#include "leanseg/tensor_io.h"
#include "model_test_util.h"
#include "train/checkpoint.h"
#include "train/distributed_options.h"

namespace leanseg {
namespace {

using Clock = std::chrono::steady_clock;

TEST(DistributedSampler, ShardsAreDisjointAndCoverTheEpoch) {
  // DistributedSampler(drop_last=False) on 5 items, 2 replicas: [0,1,2,3,4] + [0] → 0,2,4 | 1,3,0.
  EXPECT_EQ(shard_positions(5, 0, 2), (std::vector<size_t>{0, 2, 4}));
  EXPECT_EQ(shard_positions(5, 1, 2), (std::vector<size_t>{1, 3, 0}));
  EXPECT_EQ(shard_positions(1, 3, 4), (std::vector<size_t>{0}));  // padding wraps around
  for (size_t n : {1, 2, 7, 12, 13})
    for (int world : {1, 2, 3, 4}) {
      std::map<size_t, int> seen;
      const size_t per_rank = (n + world - 1) / world;
      for (int r = 0; r < world; ++r) {
        const auto shard = shard_positions(n, r, world);
        EXPECT_EQ(shard.size(), per_rank) << "n " << n << " world " << world;
        for (size_t p : shard) ++seen[p];
      }
      ASSERT_EQ(seen.size(), n) << "every position appears";
      int extra = 0;
      for (const auto& [p, count] : seen) extra += count - 1;
      EXPECT_EQ(extra, static_cast<int>(per_rank * world - n)) << "only the padding repeats positions";
      if (n % world == 0) EXPECT_EQ(extra, 0) << "disjoint when the ranks divide the set";
    }
}

TEST(DistributedSampler, TorchrunEnvironmentIsReadAndChecked) {
  ::setenv("WORLD_SIZE", "4", 1), ::setenv("RANK", "3", 1), ::setenv("LOCAL_RANK", "1", 1);
  ::setenv("MASTER_ADDR", "10.0.0.7", 1), ::setenv("MASTER_PORT", "29600", 1);
  const DistributedOptions d = distributed_options_from_environment();
  EXPECT_EQ(d.world_size, 4);
  EXPECT_EQ(d.rank, 3);
  EXPECT_EQ(d.local_rank, 1);
  EXPECT_EQ(d.master_addr, "10.0.0.7");
  EXPECT_EQ(d.master_port, 29600);
  ::setenv("RANK", "4", 1);
  EXPECT_ERROR_CONTAINS(distributed_options_from_environment(), "RANK=4 is not below WORLD_SIZE=4");
  ::setenv("RANK", "x", 1);
  EXPECT_ERROR_CONTAINS(distributed_options_from_environment(), "RANK='x'");
  for (const char* v : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}) ::unsetenv(v);
  EXPECT_FALSE(distributed_options_from_environment().enabled());
}

// A port that was free on 127.0.0.1 a moment ago.
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A command running in the background (sh -c "exec ..."): its pid is the command's.
struct Background {
  pid_t pid = -1;
  std::string log;
};

Background start(const std::string& command, const std::string& log) {
  Background b{::fork(), log};
  if (b.pid == 0) {
    const std::string line = "exec " + command + " >" + log + " 2>&1";
    ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return b;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Exit code, or -1 when it is still running after `seconds` (then it is killed).
int finish(const Background& b, double seconds) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int>(seconds * 1000));
  int status = 0;
  while (Clock::now() < deadline) {
    if (::waitpid(b.pid, &status, WNOHANG) == b.pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(b.pid, SIGKILL);
  ::waitpid(b.pid, &status, 0);
  return -1;
}

// The child of `parent` whose environment has RANK=`rank` (a worker the launcher started).
pid_t worker_with_rank(pid_t parent, int rank) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      const std::string name = entry.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::string stat = read_text(entry.path() / "stat");
      const auto close = stat.rfind(')');
      if (close == std::string::npos) continue;
      std::istringstream fields(stat.substr(close + 2));
      std::string state;
      pid_t ppid = 0;
      fields >> state >> ppid;
      if (ppid != parent) continue;
      const std::string env = read_text(entry.path() / "environ");
      if (("\0" + env).find(std::string("\0RANK=", 6) + std::to_string(rank) + '\0') != std::string::npos)
        return static_cast<pid_t>(std::stoi(name));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

bool wait_for_file(const std::string& path, double seconds) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<int>(seconds * 1000));
  while (Clock::now() < deadline) {
    if (std::filesystem::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// ||a − b|| / ||b|| over all floating-point tensors of two model files taken together (a
// per-tensor ratio would be dominated by tensors that start at zero, e.g. BatchNorm biases), in
// the files' own precision (float64 files from LEANSEG_TRAIN_FLOAT64=1 runs stay float64).
double weights_relative_difference(const std::string& a_path, const std::string& b_path) {
  const auto a = SafeTensorsFile::open(a_path), b = SafeTensorsFile::open(b_path);
  EXPECT_EQ(a.tensors().size(), b.tensors().size());
  double diff = 0, norm = 0;
  for (const auto& info : b.tensors()) {
    const auto* other = a.find(info.name);
    if (!other) {
      ADD_FAILURE() << a_path << " lacks " << info.name;
      continue;
    }
    const auto x = tensor_from_safetensors(a, *other), y = tensor_from_safetensors(b, info);
    if (!y.is_floating_point()) {
      EXPECT_TRUE(torch::equal(x, y)) << info.name;
      continue;
    }
    diff += (x.to(torch::kDouble) - y.to(torch::kDouble)).pow(2).sum().item<double>();
    norm += y.to(torch::kDouble).pow(2).sum().item<double>();
  }
  const double relative = std::sqrt(diff / std::max(norm, 1e-30));
  std::cout << "relative weight difference " << a_path << " vs " << b_path << ": " << relative << "\n";
  return relative;
}

// LEANSEG_TRAIN_FLOAT64=1 for the commands run while it exists (the workers inherit it).
struct TrainInFloat64 {
  TrainInFloat64() { ::setenv("LEANSEG_TRAIN_FLOAT64", "1", 1); }
  ~TrainInFloat64() { ::unsetenv("LEANSEG_TRAIN_FLOAT64"); }
};

// A folder dataset of 16 discs (12 train, 4 validation images: a multiple of the global batch
// of 4, so that 2 ranks × 2 images cover exactly the batches of one process × 4).
class DataParallel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    const Dataset d = test::disc_dataset(16, 64, 11);
    std::filesystem::create_directories(dir_->file("data/images"));
    std::filesystem::create_directories(dir_->file("data/masks"));
    for (const auto& s : d.samples) {
      cv::Mat image;
      s.image.convertTo(image, CV_8U, 255);
      cv::imwrite(dir_->file("data/images/" + s.id + ".png"), image);
      cv::imwrite(dir_->file("data/masks/" + s.id + ".png"), s.mask * 255);
    }
    // 2 ranks × batch 2 with synced BatchNorm, launched with --nproc: the run others compare to.
    const auto r = test::run_cli(train_args(dir_->file("two"), 2) + " --nproc 2 --sync-bn", 1);
    ASSERT_EQ(r.code, 0) << r.out;
  }
  static void TearDownTestSuite() { delete dir_; }

  // BCE alone (DiceBCE's Dice term is over each batch, so it is not additive over ranks);
  // augmentation on: each rank draws each item's augmentation from the item's epoch position.
  static std::string train_args(const std::string& out, int batch, int epochs = 2) {
    return "train --data " + dir_->file("data") + " --dataset folder --model efficient-unet --model-options "
           "'{\"channels\": [8, 8, 16, 16, 32, 32], \"reduction\": 2, \"attention_heads\": 2}' --input-size 64 "
           "--batch-size " + std::to_string(batch) + " --epochs " + std::to_string(epochs) +
           " --lr 1e-3 --seed 3 --val-fraction 0.25 --dice-weight 0 --pos-weight 2 --nchw --no-progress --out " + out;
  }
  static std::string cli() { return std::string(LEANSEG_CLI_PATH) + " --threads 1 "; }

  static test::TempDir* dir_;
};
test::TempDir* DataParallel::dir_ = nullptr;

// 2 ranks × batch 2 (synced BatchNorm) take the 6 Adam steps of 1 process × batch 4 to 1e-5
// relative (measured: ~1e-14), in double precision. In float32 they differ by ~9e-3, and so does
// the one-process run on 1 and on 2 threads: Adam's steps are ~lr × sign(gradient) for every
// weight whose gradient is well above its eps (1e-8), however small, so float rounding of
// near-zero gradients moves weights by up to 2 lr (docs/distributed.md); in double that noise is
// ~1e-9 times smaller. A U-Net of width 4, not the efficient-unet of the other tests: that one's
// trajectory is ill-conditioned even in double (1 vs 2 threads: 6e-9 after 4 steps, 1.5e-3
// after 6), a BatchNorm'd U-Net's is not (1e-14). What a wrong reduction does here (measured
// by breaking it, docs/distributed.md): gradients summed instead of averaged 1.8e-2, one
// bucket not reduced 1.4e-2, BatchNorm not synced 4.4e-2. Buckets of 10 KB: ~100 all-reduces
// per step. The checkpoints hold the double weights and Adam's moments.
TEST_F(DataParallel, TwoRanksWithSyncedBatchNormMatchOneProcessWithTwiceTheBatch) {
  const auto args = [](const std::string& out, int batch) {
    std::string a = train_args(out, batch);
    const auto model = a.find("--model efficient-unet"), size = a.find("--input-size");
    return a.replace(model, size - model, "--model unet --model-options '{\"width\": 4}' ") + " --bucket-mb 0.01";
  };
  {
    const TrainInFloat64 float64;
    auto r = test::run_cli(args(dir_->file("one64"), 4), 1);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("training in double precision"), std::string::npos) << r.out;
    r = test::run_cli(args(dir_->file("two64"), 2) + " --nproc 2 --sync-bn", 1);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("data-parallel: 2 ranks, batch 2 per rank (4 in all), synced BatchNorm"), std::string::npos) << r.out;
  }
  const std::string split = read_text(dir_->file("one64/split.json"));
  ASSERT_EQ(nlohmann::json::parse(split).at("train").size(), 12u) << "the premise: 12 training images, 3 steps per epoch";
  const auto checkpoint = SafeTensorsFile::open(dir_->file("two64/checkpoint.safetensors"));
  EXPECT_EQ(checkpoint.at("model.enc1.0.0.weight").dtype, DType::F64) << "trained in float64";
  EXPECT_LE(weights_relative_difference(dir_->file("two64/checkpoint.safetensors"), dir_->file("one64/checkpoint.safetensors")),
            1e-5);
  EXPECT_LE(weights_relative_difference(dir_->file("two64/last.safetensors"), dir_->file("one64/last.safetensors")), 1e-5)
      << "the model files (float32)";
  EXPECT_EQ(nlohmann::json::parse(read_text(dir_->file("two64/metrics.json"))).size(), 2u);
  EXPECT_TRUE(std::filesystem::exists(dir_->file("two64/eval_val.json"))) << "rank 0 evaluated the best model";
}

// Two "machines" on loopback: two commands with --nnodes 2 and their --node-rank reach exactly
// the weights of --nproc 2.
TEST_F(DataParallel, TwoNodeRanksOverLoopbackMatchTheNprocRunExactly) {
  const int port = free_port();
  const std::string node = train_args(dir_->file("nodes"), 2) + " --sync-bn --nnodes 2 --master-addr 127.0.0.1 --master-port " +
                           std::to_string(port) + " --node-rank ";
  const Background rank0 = start(cli() + node + "0", dir_->file("node0.log"));
  const Background rank1 = start(cli() + node + "1", dir_->file("node1.log"));
  EXPECT_EQ(finish(rank0, 120), 0) << read_text(rank0.log);
  EXPECT_EQ(finish(rank1, 120), 0) << read_text(rank1.log);
  EXPECT_EQ(weights_relative_difference(dir_->file("nodes/last.safetensors"), dir_->file("two/last.safetensors")), 0)
      << "the same computation as --nproc 2";
}

// A resumed run continues on every rank to exactly the uninterrupted run's weights, and may
// continue with another world size.
TEST_F(DataParallel, ResumeWorksOnEveryRankAndWithAnotherWorldSize) {
  auto r = test::run_cli(train_args(dir_->file("resumed"), 2) + " --nproc 2 --sync-bn --stop-after 1", 1);
  ASSERT_EQ(r.code, 0) << r.out;
  r = test::run_cli(train_args(dir_->file("resumed"), 2) + " --nproc 2 --sync-bn --resume", 1);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("from epoch 2"), std::string::npos) << r.out;
  EXPECT_EQ(weights_relative_difference(dir_->file("resumed/last.safetensors"), dir_->file("two/last.safetensors")), 0)
      << "resumed after epoch 1 = uninterrupted";
  r = test::run_cli(train_args(dir_->file("resumed"), 2, 3) + " --resume", 1);  // one process, epoch 3
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("from epoch 3"), std::string::npos) << r.out;
  EXPECT_EQ(nlohmann::json::parse(read_text(dir_->file("resumed/metrics.json"))).size(), 3u);
}

TEST_F(DataParallel, LaunchOptionsAreChecked) {
  auto r = test::run_cli(train_args(dir_->file("bad"), 2) + " --nnodes 2 --node-rank 1");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--master-port is required with --nnodes > 1"), std::string::npos) << r.out;
  r = test::run_cli(train_args(dir_->file("bad"), 2) + " --nnodes 2 --node-rank 2 --master-port 29999");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--node-rank must be below --nnodes"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir_->file("bad"))) << "nothing written";
}

// SIGKILL of rank 1 mid-run: rank 0 stops at its next collective naming rank 1, the launcher
// names it too, and the last checkpoint stays a valid file.
TEST_F(DataParallel, AKilledWorkerEndsTheRunNamingItsRank) {
  const Background run = start(cli() + train_args(dir_->file("killed"), 2, 200) + " --nproc 2", dir_->file("killed.log"));
  ASSERT_TRUE(wait_for_file(dir_->file("killed/checkpoint.safetensors"), 60)) << read_text(run.log);
  const pid_t rank1 = worker_with_rank(run.pid, 1);
  ASSERT_GT(rank1, 0);
  ::kill(rank1, SIGKILL);
  const auto killed_at = Clock::now();
  EXPECT_NE(finish(run, 60), 0);
  const double seconds = std::chrono::duration<double>(Clock::now() - killed_at).count();
  EXPECT_LT(seconds, 15) << "the other rank stops on its own, well before the launcher's 30 s grace";
  const std::string log = read_text(run.log);
  EXPECT_NE(log.find("worker rank 1 (pid " + std::to_string(rank1) + ") killed by signal 9"), std::string::npos) << log;
  EXPECT_NE(log.find("rank 1 stopped responding (the process died or hung); rank 0 stops"), std::string::npos) << log;
  EXPECT_NO_THROW(load_model(dir_->file("killed/last.safetensors")));
  EXPECT_TRUE(nlohmann::json::parse(read_text(dir_->file("killed/metrics.json"))).size() >= 1);
}

// `world` node ranks (one process each) of a long run over loopback with --dist-timeout
// `timeout` and ~20 gradient buckets per step; returned once rank 0 wrote its first checkpoint.
std::vector<Background> start_long_run(const test::TempDir& dir, const std::string& args, const std::string& name,
                                       int world, int timeout) {
  const std::string node = args + " --dist-timeout " + std::to_string(timeout) + " --bucket-mb 0.01 --nnodes " +
                           std::to_string(world) + " --master-addr 127.0.0.1 --master-port " + std::to_string(free_port()) +
                           " --node-rank ";
  std::vector<Background> ranks;
  for (int r = 0; r < world; ++r)
    ranks.push_back(start(std::string(LEANSEG_CLI_PATH) + " --threads 1 " + node + std::to_string(r),
                          dir.file(name + std::to_string(r) + ".log")));
  EXPECT_TRUE(wait_for_file(dir.file(name + "/checkpoint.safetensors"), 90)) << read_text(ranks[0].log);
  return ranks;
}

// The checkpoint after the run stopped: the bytes it had once the hang began (nothing rewrote
// or truncated it on the way out), a valid safetensors file with a trainer state; last model loads.
void expect_last_checkpoint_intact(const std::string& run, const std::string& before) {
  const std::string ckpt = run + "/checkpoint.safetensors";
  EXPECT_FALSE(before.empty());
  EXPECT_TRUE(read_text(ckpt) == before) << "the checkpoint changed after the hang began";
  EXPECT_NO_THROW(SafeTensorsFile::open(ckpt));
  EXPECT_GE(checkpoint_trainer_state(ckpt).at("epoch").get<int>(), 1);
  EXPECT_NO_THROW(load_model(run + "/last.safetensors"));
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A hung rank 1 of 3 (SIGSTOP, never resumed): rank 0's watchdog misses its heartbeat for
// --dist-timeout, publishes the verdict and stops; rank 2 reads it and stops too, both naming
// rank 1, within the timeout plus a few seconds however many buckets are queued (before the
// watchdog the process group's shutdown waited one timeout per queued bucket: ~20 here).
TEST_F(DataParallel, AHungRankStopsTheOthersWithinTheTimeoutNamingIt) {
  const int timeout = 3;
  const auto ranks = start_long_run(*dir_, train_args(dir_->file("hung"), 2, 200), "hung", 3, timeout);
  ::kill(ranks[1].pid, SIGSTOP);
  const auto stopped_at = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(1));  // a checkpoint being written then is complete
  const std::string checkpoint = read_text(dir_->file("hung/checkpoint.safetensors"));
  EXPECT_EQ(finish(ranks[0], 30), 1);
  const double rank0_seconds = seconds_since(stopped_at);
  EXPECT_EQ(finish(ranks[2], 30), 1);
  const double rank2_seconds = seconds_since(stopped_at);
  ::kill(ranks[1].pid, SIGKILL);
  finish(ranks[1], 10);
  std::cout << "rank 1 hung: rank 0 stopped after " << rank0_seconds << " s, rank 2 after " << rank2_seconds << " s\n";
  EXPECT_GT(rank0_seconds, timeout - 1) << "stopped by the timeout, not by something else";
  EXPECT_LT(rank0_seconds, timeout + 5) << read_text(ranks[0].log);
  EXPECT_LT(rank2_seconds, timeout + 5) << read_text(ranks[2].log);
  const std::string log0 = read_text(ranks[0].log), log2 = read_text(ranks[2].log);
  EXPECT_NE(log0.find("rank 1 stopped responding (the process died or hung); rank 0 stops (no heartbeat from it for 3 s"),
            std::string::npos) << log0;
  EXPECT_NE(log2.find("rank 1 stopped responding (the process died or hung); rank 2 stops (rank 0 found it)"),
            std::string::npos) << log2;
  expect_last_checkpoint_intact(dir_->file("hung"), checkpoint);
}

// A hung rank 0 (SIGSTOP): it hosts the rendezvous store, so nobody can read heartbeats any
// more; rank 1 stops when the store has not answered for --dist-timeout, naming rank 0.
TEST_F(DataParallel, AHungRankZeroStopsTheOthersWithinTheTimeoutNamingIt) {
  const int timeout = 3;
  const auto ranks = start_long_run(*dir_, train_args(dir_->file("hung_zero"), 2, 200), "hung_zero", 2, timeout);
  ::kill(ranks[0].pid, SIGSTOP);
  const auto stopped_at = Clock::now();
  const std::string checkpoint = read_text(dir_->file("hung_zero/checkpoint.safetensors"));
  EXPECT_EQ(finish(ranks[1], 30), 1);
  const double seconds = seconds_since(stopped_at);
  ::kill(ranks[0].pid, SIGKILL);
  finish(ranks[0], 10);
  std::cout << "rank 0 hung: rank 1 stopped after " << seconds << " s\n";
  EXPECT_GT(seconds, timeout - 1) << "stopped by the timeout, not by something else";
  EXPECT_LT(seconds, timeout + 5) << read_text(ranks[1].log);
  const std::string log = read_text(ranks[1].log);
  EXPECT_NE(log.find("rank 0 stopped responding (the process died or hung); rank 1 stops (the rendezvous store rank 0 "
                     "hosts at 127.0.0.1:"),
            std::string::npos) << log;
  expect_last_checkpoint_intact(dir_->file("hung_zero"), checkpoint);
}

}  // namespace
}  // namespace leanseg
