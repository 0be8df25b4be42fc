// How many threads each run uses: all of them, or fewer while the engine's threads wait for
// cores other processes hold (thread_adapter.h says why and how it is decided).
#include <chrono>

#include "engine_impl.h"

namespace leanseg::runtime {

namespace {
double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

// The same model planned for fewer threads, at the current input size. oneDNN's kernels fix
// their thread partition when created, so another count needs its own primitives; the arena
// is shared (one plan runs at a time).
Engine::Impl& Engine::Impl::plan_for_threads(int threads) {
  if (threads == thread_count()) return *this;
  if (!fewer || fewer->thread_count() != threads) {  // set_input_size drops it: always this size
    fewer.reset();  // its memory goes before the new plan's comes
    auto other = std::make_unique<Impl>();
    other->source = source;
    other->arena = arena;
    EngineOptions o = options;
    o.threads = threads;
    o.adapt_threads = false;
    const unsigned char* before = arena->data();
    try {
      other->init(model, o, height, width);
    } catch (...) {
      if (arena->data() != before) bind();
      throw;
    }
    if (arena->data() != before) bind();  // it grew the shared arena: this plan's pointers moved
    fewer = std::move(other);
  }
  return *fewer;
}

const std::vector<float>& Engine::Impl::run(const float* input, std::vector<StepProfile>* profile) {
  if (!adapter) {
    run_plan(input, profile);
    last_run_threads = thread_count();
    last_run_waited_share = -1;
    return output;
  }
  const int threads = adapter->next_threads();
  Impl* planned = nullptr;
  try {
    planned = &plan_for_threads(threads);
  } catch (const std::exception&) {
    // No second plan (memory, or oneDNN refused a kernel for that count): stay on this one,
    // planned and working, and stop adapting rather than fail a run the caller expects to work.
    adapter.reset();
    return run(input, profile);
  }
  Impl& chosen = *planned;
  const double waited_before = wait_clock.waited_s(threads);
  const double start = seconds_now();
  chosen.run_plan(input, profile);
  const double end = seconds_now();
  const double waited_after = wait_clock.waited_s(threads);
  const bool known = waited_before >= 0 && waited_after >= waited_before && end > start;
  const double waited = known ? waited_after - waited_before : -1;
  adapter->record(threads, end - start, waited, end);
  last_run_threads = threads;
  last_run_waited_share = known ? waited / ((end - start) * threads) : -1;
  return chosen.output;
}

}  // namespace leanseg::runtime
