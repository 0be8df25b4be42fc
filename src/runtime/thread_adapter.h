// Adapting the engine's thread count to contention for the cores (EngineOptions::adapt_threads).
//
// Why: the engine passes ~150 OpenMP barriers per inference. When another runnable process
// takes a core, one of the engine's threads waits for it at every barrier, and the whole team
// with it: beside one busy nice-0 process on 2 cores M1 ran 2.0-3.4x its idle time on 2 threads
// and 1.01-1.02x on one (Zen 5, 2026-12-07, docs/results.md). No wait policy is right on every
// CPU (spinning wins beside niced loads on a Zen 1 and loses beside a busy process on a Zen 5),
// so the engine watches the cause itself: the time its threads spent runnable but waiting for
// a core (the kernel's per-thread run delay, /proc/<pid>/task/<tid>/schedstat).
//
// How: runs are judged in windows (enough runs to span the scheduler's time slices). After two
// contended windows in a row the engine runs on half the threads (a second plan, built when first
// needed) and keeps them only if its runs are then measurably faster than the contended ones
// were: waiting alone does not say that fewer threads will be faster (beside a stream of short
// niced processes the waits come in bursts and one thread was slower). Otherwise it goes back
// and does not try again for a while (2 s, doubling to 16 s). On fewer threads it runs one window
// on all of them from time to time (after 1 s, doubling to 8 s while the cores stay busy) and
// returns to all when that window is not contended or is faster. The first run after each
// change is not judged (cold caches, a plan built).
// Private to src/runtime.
#pragma once
#include <sys/types.h>

#include <vector>

namespace leanseg::runtime {

struct ThreadAdapterSettings {
  // A window of runs is contended when its threads waited for a core this share of their time
  // or more. Idle runs wait ~0-2 %, beside niced loads 3-10 %; beside a busy process 2 threads
  // on 2 cores wait far more.
  double contended_share = 0.15;
  // A window is this many thread-seconds of runs, and at least `window_runs` of them.
  double window_thread_s = 0.1;
  int window_runs = 2;
  // Contended windows in a row before stepping down: a stream of short processes makes single
  // windows contended in bursts (a try then costs a few slower runs for nothing).
  int contended_windows = 2;
  // Fewer threads are kept only when their runs take less than this share of the contended ones.
  double keep_if_faster = 0.95;
  double first_probe_s = 1.0, longest_probe_s = 8.0;  // probing all threads while on fewer
  double first_hold_s = 2.0, longest_hold_s = 16.0;   // not stepping down after a step that did not pay
};

// The policy, separate from the measurement so that it can be tested on made-up runs.
class ThreadAdapter {
 public:
  explicit ThreadAdapter(int max_threads, ThreadAdapterSettings settings = {});
  int max_threads() const { return max_threads_; }
  // Threads for the next run: the current count, or all of them while probing.
  int next_threads() const { return probing_ ? max_threads_ : current_; }
  // One run on `threads` threads took `wall_s` seconds, during which its threads waited
  // `waited_s` thread-seconds for a core (negative: unknown, the run is ignored); `now_s` is a
  // monotonic clock.
  void record(int threads, double wall_s, double waited_s, double now_s);
  int steps_down() const { return steps_down_; }
  int steps_undone() const { return steps_undone_; }

 private:
  ThreadAdapterSettings settings_;
  int max_threads_, current_;
  bool probing_ = false;
  bool checking_ = false;  // the first window after stepping down: is it faster?
  bool skip_next_ = false;
  double window_waited_s_ = 0, window_thread_s_ = 0, window_wall_s_ = 0;
  int window_runs_ = 0;
  int contended_in_a_row_ = 0;
  double before_step_s_ = 0;  // seconds per run of the contended window that made it step down,
  int before_step_threads_ = 0;  // on this many threads
  double fewer_s_ = 0;        // seconds per run on the current (fewer) threads
  double next_probe_s_ = 0, probe_interval_s_ = 0;
  double hold_until_s_ = 0, hold_interval_s_ = 0;
  int steps_down_ = 0, steps_undone_ = 0;
  void switch_to(int threads);
  void decide(bool contended, double per_run_s, double now_s);
};

// Thread-seconds an OpenMP team has spent runnable but not running (waiting for a core), from
// the kernel's per-thread scheduler statistics. The team's thread ids are found once per team
// size and calling thread (one parallel region): OpenMP runtimes keep their pool threads.
class TeamWaitClock {
 public:
  // Seconds waited so far by the team of `threads` threads of the calling thread; -1 when the
  // kernel does not report it (no /proc, or schedstat disabled).
  double waited_s(int threads);

 private:
  int team_size_ = 0;
  pid_t caller_ = 0;
  std::vector<pid_t> team_;
  bool unavailable_ = false;
  void find_team(int threads);
};

}  // namespace leanseg::runtime
