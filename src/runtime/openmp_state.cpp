#include <omp.h>
#include <time.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "leanseg/runtime.h"

namespace leanseg::runtime {
namespace {
double thread_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}
}  // namespace

// Thread 0 sleeps `wait_ms` inside a parallel region; the CPU time thread 1 burns waiting for
// it at the barrier is how long an idle thread spins before it sleeps (capped at wait_ms).
double measure_openmp_spin_ms(int wait_ms) {
  double spin = 0;
#pragma omp parallel num_threads(2)
  {
    double start = 0;
    if (omp_get_thread_num() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    else start = thread_cpu_ms();
#pragma omp barrier
    if (omp_get_thread_num() == 1) spin = thread_cpu_ms() - start;
  }
  return spin;
}

int runnable_tasks() {
  std::ifstream in("/proc/loadavg");
  double a, b, c;
  int running = -1, total = 0;
  char slash;
  if (in >> a >> b >> c >> running >> slash >> total) return running;
  return -1;
}

}  // namespace leanseg::runtime
