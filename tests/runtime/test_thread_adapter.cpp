// Adapting the engine's thread count to contention (src/runtime/thread_adapter.h): the policy on
// made-up runs, then a real engine beside threads that hold every core.
#include <omp.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <thread>

#include "runtime/thread_adapter.h"
#include "test_graph.h"

namespace leanseg::runtime {
namespace {

// A made-up machine: seconds per run and the share of it spent waiting for a core, by thread
// count, while the cores are free and while another process holds one.
struct Machine {
  ThreadAdapter& adapter;
  bool busy = false;
  double now = 0;
  // threads -> {seconds per run, share waited}
  std::map<int, std::pair<double, double>> free_cores{{2, {0.04, 0.01}}, {1, {0.05, 0.0}}};
  std::map<int, std::pair<double, double>> held_core{{2, {0.08, 0.4}}, {1, {0.05, 0.0}}};
  int runs_on_fewer = 0, switches_to_all = 0;
  void run(int count) {
    for (int i = 0; i < count; ++i) {
      const int t = adapter.next_threads();
      const auto [wall, share] = (busy ? held_core : free_cores).at(t);
      now += wall;
      adapter.record(t, wall, share * wall * t, now);
      runs_on_fewer += t < adapter.max_threads();
      switches_to_all += t < adapter.max_threads() && adapter.next_threads() == adapter.max_threads();
    }
  }
  void run_for(double seconds) {
    for (const double end = now + seconds; now < end;) run(1);
  }
};

TEST(ThreadAdapter, IdleRunsKeepEveryThread) {
  ThreadAdapter adapter(2);
  Machine m{adapter};
  m.run(1000);
  EXPECT_EQ(adapter.next_threads(), 2);
  EXPECT_EQ(adapter.steps_down(), 0);
}

TEST(ThreadAdapter, ContendedRunsHalveTheThreadsWhileThatPays) {
  ThreadAdapter adapter(8);
  Machine m{adapter, true};
  m.held_core = {{8, {0.16, 0.5}}, {4, {0.10, 0.4}}, {2, {0.07, 0.3}}, {1, {0.05, 0.0}}};
  // 8 -> 4 -> 2 -> 1: each step two contended windows (2 runs each; the checking window of
  // the step before counts as the first), a skipped run and a checking window.
  m.run(20);
  EXPECT_EQ(adapter.next_threads(), 1);
  EXPECT_EQ(adapter.steps_down(), 3);
  EXPECT_EQ(adapter.steps_undone(), 0);
}

TEST(ThreadAdapter, GoesBackWhenFewerThreadsAreNotFasterAndWaitsLongerEachTime) {
  ThreadAdapter adapter(2);
  Machine m{adapter, true};
  m.held_core = {{2, {0.05, 0.3}}, {1, {0.08, 0.0}}};  // waits, yet one thread is slower
  m.run_for(10);
  // Tries at ~0.2 s, then after holds of 2 and 4 s: three tries in 10 s, each undone.
  EXPECT_EQ(adapter.steps_down(), 3);
  EXPECT_EQ(adapter.steps_undone(), 3);
  EXPECT_EQ(adapter.next_threads(), 2);
  EXPECT_LE(m.runs_on_fewer, 9) << "each try costs a skipped run and a window";
}

TEST(ThreadAdapter, ContendedWindowsBetweenCalmOnesDoNotStepDown) {
  // Bursts, as beside a stream of short processes: every other window contended.
  ThreadAdapter adapter(2);
  double now = 0;
  for (int i = 0; i < 400; ++i) {
    const double share = (i / 2) % 2 ? 0.4 : 0.0;  // windows of 2 runs, alternating
    adapter.record(2, 0.05, share * 0.1, now += 0.05);
  }
  EXPECT_EQ(adapter.steps_down(), 0);
}

TEST(ThreadAdapter, OneShortContendedRunIsNotAWindow) {
  ThreadAdapter adapter(2);
  // A 1 ms run that waited half its time, between idle ones: the window (0.1 thread-s) averages it away.
  adapter.record(2, 0.001, 0.001, 0.001);
  double now = 0.001;
  for (int i = 0; i < 100; ++i) adapter.record(2, 0.001, 0, now += 0.001);
  EXPECT_EQ(adapter.next_threads(), 2);
}

TEST(ThreadAdapter, ProbesAllThreadsAfterASecondAndStaysWhenTheCoresAreFree) {
  ThreadAdapter adapter(2);
  Machine m{adapter, true};
  m.run(4);  // two contended windows
  ASSERT_EQ(adapter.next_threads(), 1);
  m.busy = false;
  m.run_for(0.9);  // no probe within the first second
  EXPECT_EQ(adapter.next_threads(), 1);
  m.run_for(0.6);  // the probe window finds the cores free
  EXPECT_EQ(adapter.next_threads(), 2);
  const int fewer = m.runs_on_fewer;
  m.run(200);
  EXPECT_EQ(m.runs_on_fewer, fewer);
}

TEST(ThreadAdapter, ProbesBackOffWhileTheCoresStayBusy) {
  ThreadAdapter adapter(2);
  Machine m{adapter, true};
  m.run_for(20);
  // Probes ~1, 2, 4 and 8 s apart: four in 20 s, and one thread the rest of the time.
  EXPECT_EQ(m.switches_to_all, 4);
  EXPECT_EQ(adapter.steps_down(), 1);
  EXPECT_GT(m.runs_on_fewer, 300);
}

TEST(ThreadAdapter, RunsOfUnknownWaitOrNotChosenByItAreIgnored) {
  ThreadAdapter adapter(2);
  for (int i = 0; i < 10; ++i) adapter.record(2, 0.05, -1, 0.05 * i);  // no schedstat
  EXPECT_EQ(adapter.next_threads(), 2);
  adapter.record(2, 0.05, 0.04, 0.5);
  adapter.record(1, 0.05, 0.04, 0.55);  // a run on a count it did not choose restarts the window
  adapter.record(2, 0.05, 0.04, 0.6);
  EXPECT_EQ(adapter.next_threads(), 2);
  adapter.record(2, 0.05, 0.04, 0.65);  // one contended window: not yet
  EXPECT_EQ(adapter.next_threads(), 2);
  adapter.record(2, 0.05, 0.04, 0.7);
  adapter.record(2, 0.05, 0.04, 0.75);  // the second in a row
  EXPECT_EQ(adapter.next_threads(), 1);
}

bool schedstat_available() {
  std::ifstream in("/proc/thread-self/schedstat");
  unsigned long long on_cpu = 0, waited = 0;
  return static_cast<bool>(in >> on_cpu >> waited);
}

TEST(TeamWaitClock, CountsTheTeamsWaitAndNeverGoesBack) {
  if (!schedstat_available()) GTEST_SKIP() << "this kernel has no per-thread scheduler statistics";
  TeamWaitClock clock;
  const double first = clock.waited_s(2);
  ASSERT_GE(first, 0);
  const double second = clock.waited_s(2);
  EXPECT_GE(second, first);
  EXPECT_GE(clock.waited_s(1), 0);
}

// Convolutions at 128x128: a few ms per run, so that a run spans the scheduler's time slices.
RuntimeModel conv_stack() {
  TestGraph t(3, 128, 128);
  std::string x = t.conv("c0", "image", 3, 32, 3);
  x = t.node("Relu", "r0", {x});
  for (int i = 1; i <= 3; ++i) x = t.node("Relu", "r" + std::to_string(i), {t.conv("c" + std::to_string(i), x, 32, 32, 3)});
  t.conv("head", x, 32, 1, 1);
  return t.finish("head");
}

// Busy threads of this process, two per core, until stopped.
struct Spinners {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  explicit Spinners(int count) {
    for (int i = 0; i < count; ++i)
      threads.emplace_back([this] {
        volatile unsigned long long n = 0;
        while (!stop.load(std::memory_order_relaxed)) n = n + 1;
      });
  }
  void join() {
    stop = true;
    for (auto& t : threads) t.join();
    threads.clear();
  }
  ~Spinners() { join(); }
};

TEST(EngineThreads, RunsOnFewerThreadsWhileTheCoresAreHeldAndOnAllOnceTheyAreFree) {
  const int cores = omp_get_num_procs();
  if (cores < 2) GTEST_SKIP() << "one core: nothing to adapt";
  if (!schedstat_available()) GTEST_SKIP() << "this kernel has no per-thread scheduler statistics";
  const RuntimeModel m = conv_stack();
  const auto x = random_input(3 * 128 * 128, 7);
  EngineOptions fixed;
  fixed.threads = cores;
  fixed.adapt_threads = false;
  Engine fixed_engine = Engine::from_model(m, fixed);
  const std::vector<float> expected = fixed_engine.run(x.data());
  EngineOptions one_thread = fixed;
  one_thread.threads = 1;
  // The two plans share one arena, sized for the larger of them.
  const size_t shared_arena = std::max(fixed_engine.arena_bytes(), Engine::from_model(m, one_thread).arena_bytes());
  EngineOptions adaptive = fixed;
  adaptive.adapt_threads = true;
  Engine engine = Engine::from_model(m, adaptive);
  engine.run(x.data());
  EXPECT_EQ(engine.last_run_threads(), cores);

  using Clock = std::chrono::steady_clock;
  Spinners spinners(2 * cores);
  bool fewer = false;
  double worst = 0, most_waited = 0;
  for (auto end = Clock::now() + std::chrono::seconds(20); !fewer && Clock::now() < end;) {
    const auto& out = engine.run(x.data());
    fewer = engine.last_run_threads() < cores;
    most_waited = std::max(most_waited, engine.last_run_waited_share());
    for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::abs(double(out[i]) - expected[i]));
  }
  spinners.join();
  ASSERT_TRUE(fewer) << "the engine kept " << cores << " threads beside " << 2 * cores << " busy threads";
  EXPECT_GE(most_waited, 0.15) << "it stepped down without a contended run";
  EXPECT_LT(worst, 1e-4) << "the plan for fewer threads computes something else";
  EXPECT_EQ(engine.arena_bytes(), shared_arena);

  bool all = false;
  double worst_after = 0;
  for (auto end = Clock::now() + std::chrono::seconds(20); !all && Clock::now() < end;) {
    const auto& out = engine.run(x.data());
    all = engine.last_run_threads() == cores;
    for (size_t i = 0; i < out.size(); ++i) worst_after = std::max(worst_after, std::abs(double(out[i]) - expected[i]));
  }
  EXPECT_TRUE(all) << "the engine did not return to " << cores << " threads once the cores were free";
  EXPECT_LT(worst_after, 1e-4) << "a plan reads what the other left in the shared arena";
}

TEST(EngineThreads, AFixedCountNeverAdapts) {
  if (omp_get_num_procs() < 2) GTEST_SKIP() << "one core";
  EngineOptions fixed;
  fixed.threads = 2;
  fixed.adapt_threads = false;
  Engine engine = Engine::from_model(conv_stack(), fixed);
  const auto x = random_input(3 * 128 * 128, 7);
  Spinners spinners(4);
  for (int i = 0; i < 20; ++i) {
    engine.run(x.data());
    ASSERT_EQ(engine.last_run_threads(), 2);
  }
  EXPECT_LT(engine.last_run_waited_share(), 0) << "a fixed engine does not measure";
}

}  // namespace
}  // namespace leanseg::runtime
