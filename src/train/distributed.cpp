// Data-parallel training on c10d.
//
// Gradient averaging: bucketed all-reduce on the process group, started from autograd hooks, not
// DDP's Reducer. The Reducer's symbols are in libtorch_cpu.so, but its header
// (c10d/reducer.hpp) includes torch/csrc/distributed/autograd/context/context.h, which Debian's
// libtorch-dev does not ship, and the types of that header are part of the Reducer's member
// layout: using it would mean re-declaring PyTorch internals. What it does for a CPU model is
// small and done here the same way: parameters in reverse order grouped into buckets (1 MB
// first, then --bucket-mb, DDP's defaults), each bucket all-reduced asynchronously as soon as
// its last gradient exists (so communication overlaps the rest of the backward pass), buckets
// always started in the same order on every rank, the sums divided by the world size and
// copied back into the .grad tensors before the optimizer step.
//
// ProcessGroupGloo.hpp declares its class only under USE_C10D_GLOO, which Torch's CMake package
// defines for its users (Debian's LibTorch is built with Gloo: the symbols are in libtorch_cpu.so).
#include "distributed.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "leanseg/error.h"
#include "models/batch_norm.h"

namespace leanseg {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
constexpr auto kHeartbeatInterval = 500ms;
constexpr int64_t kRendezvousSeconds = 300;
constexpr auto kDiagnosisDeadline = 5s;
constexpr int64_t kFirstBucketBytes = 1024 * 1024;  // dist._DEFAULT_FIRST_BUCKET_BYTES
// How often the watchdog looks at the heartbeats, and how long rank 0 keeps the store up after
// publishing that a rank hung (so that the other ranks read who it was before they stop).
constexpr auto kWatchdogPoll = 100ms;
constexpr auto kVerdictPublished = 3 * kHeartbeatInterval;
// Once a rank's training failed, how long it may take to explain and shut the process group
// down (joining Gloo's threads waits for queued buckets, each up to its own timeout).
constexpr auto kShutdownDeadline = 10s;
// Collectives time out later than the watchdog (a fallback for a rank whose heartbeat thread
// runs on but whose training thread is stuck): a hung rank is the watchdog's to report.
constexpr auto kCollectiveTimeoutMargin = 10s;

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

std::string heartbeat_key(int rank) { return "leanseg/heartbeat/" + std::to_string(rank); }
std::string failure_key(int rank) { return "leanseg/failed/" + std::to_string(rank); }
const std::string kVerdictKey = "leanseg/verdict";

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

std::string message_of(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const c10::Error& x) {
    return x.what_without_backtrace();
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown error";
  }
}

void all_reduce_on(c10d::ProcessGroup& group, torch::Tensor t) {
  std::vector<torch::Tensor> v{std::move(t)};
  group.allreduce(v)->wait();
}

// Ranks whose heartbeat did not advance over a few intervals.
std::vector<int> stalled_ranks(c10d::Store& store, const DistributedOptions& o) {
  auto counts = [&] {
    std::vector<int64_t> c;
    for (int r = 0; r < o.world_size; ++r) c.push_back(store.add(heartbeat_key(r), 0));
    return c;
  };
  const auto before = counts();
  std::this_thread::sleep_for(4 * kHeartbeatInterval);
  const auto after = counts();
  std::vector<int> stalled;
  for (int r = 0; r < o.world_size; ++r)
    if (r != o.rank && after[r] == before[r]) stalled.push_back(r);
  return stalled;
}

// The failure another rank recorded, or the ranks whose heartbeat stopped; "" when none.
std::string peer_failure(c10d::Store& store, const DistributedOptions& o) {
  for (int r = 0; r < o.world_size; ++r)
    if (r != o.rank && store.check({failure_key(r)})) {
      const auto v = store.get(failure_key(r));
      return "rank " + std::to_string(r) + " failed: " + std::string(v.begin(), v.end());
    }
  std::string names;
  for (int r : stalled_ranks(store, o)) names += (names.empty() ? "" : ", ") + std::to_string(r);
  if (names.empty()) return "";
  return "rank " + names + " stopped responding (the process died or hung)";
}

bool is_loopback(const std::string& host) { return host == "localhost" || host.rfind("127.", 0) == 0; }

// Gloo's TCP device: on the interface GLOO_SOCKET_IFNAME names (as in PyTorch), on loopback
// when the run is local, else on the address this host's name resolves to.
std::shared_ptr<::gloo::transport::Device> gloo_device(const std::string& master_addr) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (is_loopback(master_addr)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

// What a rank knows of the others' liveness: written by its heartbeat thread, judged by its
// watchdog thread. Both threads are detached and share it (a store call to a hung rank 0 blocks
// the heartbeat thread until the process exits; the watchdog never calls the store but to
// publish a verdict on rank 0, whose store is its own).
struct Liveness {
  explicit Liveness(const DistributedOptions& options) : o(options), peer_advanced_ms(options.world_size) {
    const int64_t t = now_ms();
    store_answered_ms = t;
    for (auto& a : peer_advanced_ms) a = t;
  }
  const DistributedOptions o;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> store_answered_ms{0};           // when the store last answered this rank
  std::vector<std::atomic<int64_t>> peer_advanced_ms;  // rank 0: when each rank's heartbeat last advanced
  std::atomic<int64_t> exit_deadline_ms{0};            // after a failure: when the process must be gone (0: none)
  std::mutex mutex;
  std::string verdict;       // rank 0's finding that a rank hung (other ranks read it from the store)
  std::string stop_message;  // after a failure: what this rank says if it must exit at the deadline
};

std::string seconds_text(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", s);
  return text;
}

// Every kHeartbeatInterval: counts this rank's heartbeat in the store; rank 0 also notes when
// every other rank's count last advanced, the others read rank 0's verdict if it published one.
void beat(c10::intrusive_ptr<c10d::TCPStore> store, std::shared_ptr<Liveness> live) {
  const DistributedOptions& o = live->o;
  std::vector<int64_t> counts(static_cast<size_t>(o.world_size), 0);
  while (!live->stop) {
    try {
      store->add(heartbeat_key(o.rank), 1);
      if (o.rank == 0) {
        for (int r = 1; r < o.world_size; ++r) {
          const int64_t c = store->add(heartbeat_key(r), 0);
          if (c != counts[r]) counts[r] = c, live->peer_advanced_ms[r] = now_ms();
        }
      } else if (store->check({kVerdictKey})) {
        const auto v = store->get(kVerdictKey);
        std::lock_guard<std::mutex> lock(live->mutex);
        live->verdict.assign(v.begin(), v.end());
      }
      live->store_answered_ms = now_ms();
    } catch (...) {
      return;  // the store (rank 0) is gone: a collective fails at once, or the watchdog says so
    }
    for (int i = 0; i < 10 && !live->stop; ++i) std::this_thread::sleep_for(kHeartbeatInterval / 10);
  }
}

[[noreturn]] void stop_process(const std::string& message) {
  std::fprintf(stderr, "leanseg: error: %s\n", message.c_str());
  std::fflush(stderr);
  std::_Exit(1);  // not exit(): the training thread is blocked in a collective that never ends
}

// Stops the process (exit code 1, a message naming the rank) within --dist-timeout plus ~2 s (a
// heartbeat interval, and the time the others get to read rank 0's verdict) of a rank hanging,
// however many collectives are queued: rank 0 judges every rank's
// heartbeat and publishes its verdict in the store before it stops; the other ranks stop on
// that verdict, or when rank 0's store itself stops answering (rank 0 hung or died). After a
// failure it also bounds the shutdown (explain_failure arms the deadline). Files stay intact:
// every one is written atomically, so an interrupted write leaves the previous version.
void watch(c10::intrusive_ptr<c10d::TCPStore> store, std::shared_ptr<Liveness> live) {
  const DistributedOptions& o = live->o;
  const int64_t timeout = to_ms(o.timeout_seconds).count();
  const std::string me = "rank " + std::to_string(o.rank) + " stops";
  const std::string silent = " for " + seconds_text(o.timeout_seconds) + " s, --dist-timeout)";
  while (!live->stop) {
    std::this_thread::sleep_for(kWatchdogPoll);
    if (live->stop) return;
    const int64_t now = now_ms(), deadline = live->exit_deadline_ms;
    std::unique_lock<std::mutex> lock(live->mutex);
    if (deadline && now > deadline) stop_process(live->stop_message + " (the process group did not shut down in time)");
    if (!live->verdict.empty()) stop_process(live->verdict + "; " + me + " (rank 0 found it)");
    lock.unlock();
    if (o.rank != 0 && now - live->store_answered_ms > timeout)
      stop_process("rank 0 stopped responding (the process died or hung); " + me + " (the rendezvous store rank 0 hosts at " +
                   o.master_addr + ":" + std::to_string(o.master_port) + " has not answered" + silent);
    if (o.rank != 0) continue;
    std::string hung;
    for (int r = 1; r < o.world_size; ++r)
      if (now - live->peer_advanced_ms[r] > timeout) hung += (hung.empty() ? "" : ", ") + std::to_string(r);
    if (hung.empty()) continue;
    const std::string verdict = "rank " + hung + " stopped responding (the process died or hung)";
    try {
      store->set(kVerdictKey, bytes_of(verdict));
      std::this_thread::sleep_for(kVerdictPublished);  // the others read it before the store goes
    } catch (...) {
    }
    stop_process(verdict + "; " + me + " (no heartbeat from it" + silent);
  }
}

}  // namespace

std::vector<size_t> shard_positions(size_t n, int rank, int world_size) {
  require(world_size >= 1 && rank >= 0 && rank < world_size, "shard_positions: rank outside [0, world size)");
  const size_t w = static_cast<size_t>(world_size);
  const size_t padded = (n + w - 1) / w * w;
  std::vector<size_t> positions;
  if (n == 0) return positions;
  for (size_t p = static_cast<size_t>(rank); p < padded; p += w) positions.push_back(p % n);
  return positions;
}

namespace {
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  require(*v && end && *end == 0 && x >= 0 && x < (1L << 30),
          std::string("environment variable ") + name + "='" + v + "' is not a non-negative integer");
  return static_cast<int>(x);
}
}  // namespace

DistributedOptions distributed_options_from_environment() {
  DistributedOptions o;
  o.world_size = env_int("WORLD_SIZE", 1);
  require(o.world_size >= 1, "environment variable WORLD_SIZE must be >= 1");
  o.rank = env_int("RANK", 0);
  o.local_rank = env_int("LOCAL_RANK", 0);
  require(o.rank < o.world_size, "environment variable RANK=" + std::to_string(o.rank) + " is not below WORLD_SIZE=" +
                                     std::to_string(o.world_size));
  if (const char* addr = std::getenv("MASTER_ADDR")) o.master_addr = addr;
  o.master_port = env_int("MASTER_PORT", o.master_port);
  require(o.world_size == 1 || std::getenv("RANK"), "environment variable WORLD_SIZE is set but RANK is not");
  return o;
}

// Gradients of the trainable parameters, averaged over the ranks in buckets.
class GradientBuckets {
 public:
  GradientBuckets(const std::vector<torch::Tensor>& params, int64_t cap_bytes, c10d::ProcessGroup& group)
      : params_(params), group_(group) {
    // Reverse order: backward produces the last layers' gradients first.
    // DDP's first bucket is 1 MB whatever the cap; here never larger than the cap either, so that
    // a small --bucket-mb gives small buckets from the start.
    int64_t bytes = 0, cap = std::min(kFirstBucketBytes, cap_bytes);
    for (size_t k = params.size(); k-- > 0;) {
      const auto& p = params[k];
      if (buckets_.empty() || bytes >= cap) {
        if (!buckets_.empty()) cap = cap_bytes;
        buckets_.emplace_back();
        bytes = 0;
      }
      Bucket& b = buckets_.back();
      slot_[k] = {buckets_.size() - 1, b.size};
      b.params.push_back(k);
      b.size += p.numel();
      bytes += p.numel() * static_cast<int64_t>(p.element_size());
    }
    for (auto& b : buckets_) b.buffer = torch::zeros({b.size}, params.front().options().requires_grad(false));
    for (size_t k = 0; k < params.size(); ++k)
      hooks_.push_back(params_[k].register_hook([this, k](torch::Tensor grad) { ready(k, grad); }));
  }
  ~GradientBuckets() {
    for (size_t k = 0; k < params_.size(); ++k) params_[k].remove_hook(hooks_[k]);
  }

  void begin() {
    for (auto& b : buckets_) b.pending = b.params.size(), b.work.reset();
    seen_.clear();
    next_ = 0;
    active_ = true;
  }

  // After backward: every bucket reduced (a parameter that got no gradient counts zeros), the
  // averages in the parameters' .grad.
  void finish() {
    torch::NoGradGuard no_grad;
    for (auto& b : buckets_)
      if (b.pending > 0) {
        for (size_t k : b.params)
          if (!seen_.count(k)) b.buffer.narrow(0, slot_[k].offset, params_[k].numel()).zero_();
        b.pending = 0;
      }
    start_ready_buckets();
    for (auto& b : buckets_) {
      b.work->wait();
      b.buffer.div_(group_.getSize());
      for (size_t k : b.params) {
        auto& p = params_[k];
        const auto average = b.buffer.narrow(0, slot_[k].offset, p.numel()).view(p.sizes());
        if (p.grad().defined()) p.mutable_grad().copy_(average);
        else p.mutable_grad() = average.clone();
      }
    }
    active_ = false;
  }

 private:
  struct Bucket {
    std::vector<size_t> params;
    int64_t size = 0;  // elements
    size_t pending = 0;
    torch::Tensor buffer;
    c10::intrusive_ptr<c10d::Work> work;
  };
  struct Slot {
    size_t bucket = 0;
    int64_t offset = 0;
  };

  void ready(size_t k, const torch::Tensor& grad) {
    if (!active_) return;
    const Slot& s = slot_[k];
    Bucket& b = buckets_[s.bucket];
    torch::NoGradGuard no_grad;
    b.buffer.narrow(0, s.offset, params_[k].numel()).copy_(grad.reshape({-1}));
    seen_.insert(k);
    if (--b.pending == 0) start_ready_buckets();
  }

  // In bucket order, so that every rank issues the same collectives in the same order.
  void start_ready_buckets() {
    while (next_ < buckets_.size() && buckets_[next_].pending == 0) {
      std::vector<torch::Tensor> v{buckets_[next_].buffer};
      buckets_[next_].work = group_.allreduce(v);
      ++next_;
    }
  }

  std::vector<torch::Tensor> params_;
  c10d::ProcessGroup& group_;
  std::vector<Bucket> buckets_;
  std::map<size_t, Slot> slot_;
  std::set<size_t> seen_;
  std::vector<unsigned> hooks_;
  size_t next_ = 0;
  bool active_ = false;
};

struct DataParallel::Impl {
  DistributedOptions o;
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  std::unique_ptr<GradientBuckets> gradients;
  std::shared_ptr<Liveness> live;
  bool batch_norm_synchronised = false;

  void wait(c10::intrusive_ptr<c10d::Work> work) { work->wait(); }

  void all_reduce(torch::Tensor t) { all_reduce_on(*group, std::move(t)); }
};

DataParallel::DataParallel(const DistributedOptions& o) : impl_(std::make_unique<Impl>()) {
  require(o.world_size >= 1 && o.rank >= 0 && o.rank < o.world_size,
          "distributed training: rank " + std::to_string(o.rank) + " is not in [0, " + std::to_string(o.world_size) + ")");
  require(o.master_port > 0 && o.master_port < 65536, "distributed training: master port must be in 1..65535, got " +
                                                          std::to_string(o.master_port));
  impl_->o = o;
  const auto timeout = to_ms(o.timeout_seconds);
  // Starting the workers (loading data on each) may take longer than a collective may wait.
  const auto rendezvous_timeout = std::max(timeout, std::chrono::milliseconds(kRendezvousSeconds * 1000));
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(o.master_port);
  so.isServer = o.rank == 0;
  so.numWorkers = static_cast<size_t>(o.world_size);
  so.waitWorkers = true;
  so.timeout = rendezvous_timeout;
  const std::string where = o.master_addr + ":" + std::to_string(o.master_port);
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout + kCollectiveTimeoutMargin);
    options->devices = {gloo_device(o.master_addr)};
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, o.rank, o.world_size, options);
  } catch (...) {
    throw Error("distributed training: rank " + std::to_string(o.rank) + " of " + std::to_string(o.world_size) +
                " could not join the run at " + where + ": " + message_of(std::current_exception()));
  }
  // The heartbeat and watchdog threads own what they use: they are detached, since a call into
  // the store of a hung rank 0 may block until the process exits.
  impl_->live = std::make_shared<Liveness>(o);
  std::thread(beat, impl_->store, impl_->live).detach();
  std::thread(watch, impl_->store, impl_->live).detach();
}

DataParallel::~DataParallel() {
  if (impl_->batch_norm_synchronised) set_batch_norm_synchroniser({});
  impl_->gradients.reset();
  // Joins Gloo's threads, which finish the queued collectives first: after a failure this can
  // take a timeout per queued bucket, so the watchdog's deadline (explain_failure) bounds it.
  impl_->group.reset();
  impl_->live->stop = true;
}

int DataParallel::rank() const { return impl_->o.rank; }
int DataParallel::world_size() const { return impl_->o.world_size; }

void DataParallel::broadcast_from_main(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  // One flat buffer per dtype: a few collectives instead of one per tensor.
  std::map<torch::ScalarType, std::vector<torch::Tensor>> by_type;
  for (const auto& t : tensors) by_type[t.scalar_type()].push_back(t);
  for (auto& [type, group] : by_type) {
    std::vector<torch::Tensor> flat;
    for (const auto& t : group) flat.push_back(t.detach().reshape({-1}));
    std::vector<torch::Tensor> buffer{torch::cat(flat)};
    impl_->wait(impl_->group->broadcast(buffer));
    int64_t at = 0;
    for (auto& t : group) {
      t.detach().copy_(buffer[0].narrow(0, at, t.numel()).view(t.sizes()));
      at += t.numel();
    }
  }
}

std::vector<double> DataParallel::broadcast_from_main(std::vector<double> values) {
  std::vector<torch::Tensor> t{torch::tensor(values, torch::kDouble)};
  impl_->wait(impl_->group->broadcast(t));
  return {t[0].data_ptr<double>(), t[0].data_ptr<double>() + values.size()};
}

std::vector<double> DataParallel::sum(std::vector<double> values) {
  auto t = torch::tensor(values, torch::kDouble);
  impl_->all_reduce(t);
  return {t.data_ptr<double>(), t.data_ptr<double>() + values.size()};
}

void DataParallel::barrier() { impl_->wait(impl_->group->barrier()); }

void DataParallel::average_gradients_of(const std::vector<torch::Tensor>& trainable) {
  require(!trainable.empty(), "distributed training: the model has no trainable parameters");
  impl_->gradients = std::make_unique<GradientBuckets>(
      trainable, static_cast<int64_t>(impl_->o.bucket_megabytes * 1024 * 1024), *impl_->group);
}

void DataParallel::before_backward() {
  if (impl_->gradients) impl_->gradients->begin();
}

void DataParallel::after_backward() {
  if (impl_->gradients) impl_->gradients->finish();
}

double DataParallel::time_all_reduce(int64_t bytes, int repeats) {
  auto buffer = torch::ones({std::max<int64_t>(1, bytes / 4)}, torch::kFloat);
  impl_->all_reduce(buffer);  // warm-up (connections, algorithm cache)
  barrier();
  const auto t0 = Clock::now();
  for (int i = 0; i < repeats; ++i) impl_->all_reduce(buffer);
  return std::chrono::duration<double>(Clock::now() - t0).count() / std::max(1, repeats);
}

std::exception_ptr DataParallel::explain_failure(std::exception_ptr error) {
  const std::string me = "rank " + std::to_string(rank());
  Liveness& live = *impl_->live;
  const auto arm_deadline = [&](const std::string& message, std::chrono::milliseconds within) {
    std::lock_guard<std::mutex> lock(live.mutex);
    live.stop_message = message;
    live.exit_deadline_ms = now_ms() + within.count();
  };
  arm_deadline(me + ": " + message_of(error), 4 * kHeartbeatInterval + kDiagnosisDeadline + kShutdownDeadline);
  const std::string store_gone = "rank 0 stopped responding (the rendezvous store it hosts at " + impl_->o.master_addr +
                                 ":" + std::to_string(impl_->o.master_port) + " does not answer)";
  // In a detached thread with a deadline: the store of a hung rank 0 never answers.
  auto answer = std::make_shared<std::promise<std::string>>();
  auto future = answer->get_future();
  std::thread([store = impl_->store, o = impl_->o, answer, store_gone] {
    try {
      answer->set_value(peer_failure(*store, o));
    } catch (...) {
      answer->set_value(o.rank == 0 ? "" : store_gone);
    }
  }).detach();
  std::string peer = store_gone;
  if (future.wait_for(4 * kHeartbeatInterval + kDiagnosisDeadline) == std::future_status::ready) peer = future.get();
  else if (rank() == 0) peer = "";
  if (!peer.empty()) {
    const std::string message = peer + "; " + me + " stops (" + message_of(error) + ")";
    arm_deadline(message, kShutdownDeadline);
    return std::make_exception_ptr(Error(message));
  }
  const std::string what = message_of(error);
  try {
    impl_->store->set(failure_key(rank()), bytes_of(what));
  } catch (...) {
  }
  arm_deadline(me + ": " + what, kShutdownDeadline);
  return std::make_exception_ptr(Error(me + ": " + what));
}

// SyncBatchNorm (training mode): mean and biased variance over every rank's batch, combined
// exactly from per-rank counts, means and squared deviations (Chan et al.) in double; the
// backward pass all-reduces Σdy and Σdy·(x−mean) the same way. Weight and bias gradients stay
// per-rank sums: GradientBuckets averages them like every other gradient.
namespace {

struct SyncBatchNormFunction : torch::autograd::Function<SyncBatchNormFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, torch::Tensor weight,
                               torch::Tensor bias, torch::nn::BatchNorm2dImpl* bn, c10d::ProcessGroup* group) {
    const int64_t c = x.size(1);
    const std::vector<int64_t> dims{0, 2, 3};
    const double n = static_cast<double>(x.numel() / c);
    const auto xd = x.to(torch::kDouble);
    const auto mean_local = xd.mean(dims);
    const auto m2_local = (xd - mean_local.view({1, c, 1, 1})).pow(2).sum(dims);
    auto pack = torch::cat({mean_local * n, m2_local + n * mean_local * mean_local, torch::full({1}, n, torch::kDouble)});
    all_reduce_on(*group, pack);
    const double total = pack[2 * c].item<double>();
    const auto mean = pack.narrow(0, 0, c) / total;
    const auto var = (pack.narrow(0, c, c) / total - mean * mean).clamp_min(0);
    const double eps = bn->options.eps();
    const auto invstd = (var + eps).rsqrt();
    {
      torch::NoGradGuard no_grad;
      double factor = bn->options.momentum().value_or(0.0);
      if (bn->options.track_running_stats() && bn->num_batches_tracked.defined()) {
        bn->num_batches_tracked += 1;
        if (!bn->options.momentum()) factor = 1.0 / bn->num_batches_tracked.item<double>();
        const auto unbiased = var * (total / std::max(1.0, total - 1));
        bn->running_mean.mul_(1 - factor).add_(mean.to(bn->running_mean.scalar_type()) * factor);
        bn->running_var.mul_(1 - factor).add_(unbiased.to(bn->running_var.scalar_type()) * factor);
      }
    }
    const auto mean_f = mean.to(x.scalar_type()).view({1, c, 1, 1});
    const auto invstd_f = invstd.to(x.scalar_type()).view({1, c, 1, 1});
    ctx->save_for_backward({x, weight, mean_f, invstd_f});
    ctx->saved_data["group"] = reinterpret_cast<int64_t>(group);
    ctx->saved_data["total"] = total;
    return (x - mean_f) * invstd_f * weight.view({1, c, 1, 1}) + bias.view({1, c, 1, 1});
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &mean = saved[2], &invstd = saved[3];
    auto* group = reinterpret_cast<c10d::ProcessGroup*>(ctx->saved_data["group"].toInt());
    const double total = ctx->saved_data["total"].toDouble();
    const int64_t c = x.size(1);
    const std::vector<int64_t> dims{0, 2, 3};
    const auto dy = grads[0];
    const auto xmu = x - mean;
    const auto sum_dy = dy.sum(dims, false, torch::kDouble);
    const auto sum_dy_xmu = (dy * xmu).sum(dims, false, torch::kDouble);
    auto global = torch::cat({sum_dy, sum_dy_xmu});
    all_reduce_on(*group, global);
    const auto mean_dy = (global.narrow(0, 0, c) / total).to(x.scalar_type()).view({1, c, 1, 1});
    const auto mean_dy_xmu = (global.narrow(0, c, c) / total).to(x.scalar_type()).view({1, c, 1, 1});
    const auto dx = (dy - mean_dy - xmu * invstd * invstd * mean_dy_xmu) * invstd * weight.view({1, c, 1, 1});
    const auto grad_weight = (sum_dy_xmu.to(x.scalar_type()) * invstd.view({c}));
    const auto grad_bias = sum_dy.to(x.scalar_type());
    return {dx, grad_weight, grad_bias, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

void DataParallel::synchronise_batch_norm() {
  c10d::ProcessGroup* group = impl_->group.get();
  set_batch_norm_synchroniser([group](torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x) {
    require(bn.options.affine(), "--sync-bn: BatchNorm without affine parameters is not supported");
    return SyncBatchNormFunction::apply(x, bn.weight, bn.bias, &bn, group);
  });
  impl_->batch_norm_synchronised = true;
}

}  // namespace leanseg
