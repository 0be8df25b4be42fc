#include "thread_adapter.h"

#include <fcntl.h>
#include <omp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace leanseg::runtime {

ThreadAdapter::ThreadAdapter(int max_threads, ThreadAdapterSettings settings)
    : settings_(settings), max_threads_(std::max(1, max_threads)), current_(max_threads_) {}

void ThreadAdapter::record(int threads, double wall_s, double waited_s, double now_s) {
  if (waited_s < 0 || wall_s <= 0) return;
  if (threads != next_threads()) {  // not a run the adapter chose: start the window again
    window_waited_s_ = window_thread_s_ = window_wall_s_ = 0, window_runs_ = 0;
    return;
  }
  if (skip_next_) {
    skip_next_ = false;
    return;
  }
  window_waited_s_ += waited_s, window_thread_s_ += wall_s * threads, window_wall_s_ += wall_s, ++window_runs_;
  if (window_runs_ < settings_.window_runs || window_thread_s_ < settings_.window_thread_s) return;
  const bool contended = window_waited_s_ >= settings_.contended_share * window_thread_s_;
  const double per_run_s = window_wall_s_ / window_runs_;
  window_waited_s_ = window_thread_s_ = window_wall_s_ = 0, window_runs_ = 0;
  decide(contended, per_run_s, now_s);
}

void ThreadAdapter::switch_to(int threads) {
  current_ = threads;
  skip_next_ = true;
  contended_in_a_row_ = 0;
}

void ThreadAdapter::decide(bool contended, double per_run_s, double now_s) {
  if (probing_) {  // a window on all threads: are the cores free again, or are all threads faster anyway?
    probing_ = false;
    if (!contended || per_run_s < fewer_s_) {
      switch_to(max_threads_);
      return;
    }
    skip_next_ = true;
    probe_interval_s_ = std::min(2 * probe_interval_s_, settings_.longest_probe_s);
    next_probe_s_ = now_s + probe_interval_s_;
    return;
  }
  if (checking_) {  // the first window on fewer threads: keep them only if they pay
    checking_ = false;
    if (per_run_s >= settings_.keep_if_faster * before_step_s_) {
      switch_to(before_step_threads_);
      ++steps_undone_;
      hold_interval_s_ = hold_interval_s_ > 0 ? std::min(2 * hold_interval_s_, settings_.longest_hold_s)
                                              : settings_.first_hold_s;
      hold_until_s_ = now_s + hold_interval_s_;
      return;
    }
    hold_interval_s_ = 0;
  }
  if (current_ < max_threads_) fewer_s_ = per_run_s;
  contended_in_a_row_ = contended ? contended_in_a_row_ + 1 : 0;
  if (contended_in_a_row_ >= settings_.contended_windows && current_ > 1 && now_s >= hold_until_s_) {
    before_step_s_ = per_run_s;
    before_step_threads_ = current_;
    checking_ = true;
    switch_to(std::max(1, current_ / 2));
    probe_interval_s_ = settings_.first_probe_s;
    next_probe_s_ = now_s + probe_interval_s_;
    ++steps_down_;
    return;
  }
  if (current_ < max_threads_ && now_s >= next_probe_s_) {
    probing_ = true;
    skip_next_ = true;
  }
}

namespace {
// Field 2 of /proc/self/task/<tid>/schedstat: nanoseconds runnable but waiting on a run queue.
// Read with plain system calls: a few microseconds per thread and run.
bool read_run_delay_ns(pid_t tid, double* ns) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", static_cast<int>(tid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char text[96];
  const ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return false;
  text[n] = '\0';
  char* end = nullptr;
  std::strtoull(text, &end, 10);  // time on the CPU
  if (end == text) return false;
  const char* delay = end;
  const unsigned long long waited = std::strtoull(delay, &end, 10);
  if (end == delay) return false;
  *ns = static_cast<double>(waited);
  return true;
}

pid_t this_thread_id() { return static_cast<pid_t>(::syscall(SYS_gettid)); }
}  // namespace

void TeamWaitClock::find_team(int threads) {
  team_.assign(static_cast<size_t>(std::max(1, threads)), 0);
  int size = 1;
#pragma omp parallel num_threads(threads)
  {
    team_[static_cast<size_t>(omp_get_thread_num())] = this_thread_id();
#pragma omp single
    size = omp_get_num_threads();  // fewer when nested inside the host's own parallel region
  }
  team_.resize(static_cast<size_t>(size));
  team_size_ = threads;
  caller_ = this_thread_id();
}

double TeamWaitClock::waited_s(int threads) {
  if (unavailable_) return -1;
  if (threads != team_size_ || this_thread_id() != caller_) find_team(threads);
  double total = 0;
  for (int attempt = 0; attempt < 2; ++attempt) {
    total = 0;
    bool all = true;
    for (pid_t tid : team_) {
      double ns = 0;
      if (!read_run_delay_ns(tid, &ns)) {
        all = false;
        break;
      }
      total += ns;
    }
    if (all) return total * 1e-9;
    find_team(threads);  // a pool thread exited (the runtime shrank its pool): find the team again
  }
  unavailable_ = true;
  return -1;
}

}  // namespace leanseg::runtime
