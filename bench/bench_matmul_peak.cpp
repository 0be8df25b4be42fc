// The roofline's roof: the multiply-add rate oneDNN's matmul reaches on this machine, per data
// type, on a GEMM large enough to be compute-bound (docs/runtime.md, "Roofline"). The engine's
// convolutions run on the same oneDNN kernels' building blocks (brgemm), so a model's achieved
// GFLOP/s over this peak is the share of the machine it uses.
//   usage: bench_matmul_peak [THREADS=2] [SIZE=2048] [RUNS=15]
// Prints one line per type: median and best GFLOP/s (2·M·N·K per run; int8 counts its
// multiply-adds like the others) over RUNS runs after 3 warm-ups, and the kernel oneDNN chose.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "dnnl.hpp"

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

struct Result {
  double median_gflops, best_gflops;
  const char* impl;
};

Result time_matmul(dt src, dt wei, dt dst, int64_t n, int runs) {
  dnnl::engine cpu(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(cpu);
  const dnnl::memory::desc a({n, n}, src, tag::ab), b({n, n}, wei, tag::any), c({n, n}, dst, tag::ab);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), cpu);
  dnnl::memory ma(a, cpu), mb(pd.weights_desc(), cpu), mc(c, cpu);
  // Any bytes do for timing; zeroed so that no denormals or NaNs slow a run down.
  std::fill_n(static_cast<char*>(ma.get_data_handle()), a.get_size(), 0);
  std::fill_n(static_cast<char*>(mb.get_data_handle()), pd.weights_desc().get_size(), 0);
  dnnl::matmul mm(pd);
  std::vector<double> seconds;
  for (int r = 0; r < runs + 3; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    mm.execute(stream, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
    stream.wait();
    if (r >= 3) seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(seconds.begin(), seconds.end());
  const double flop = 2.0 * n * n * n;
  return {flop / seconds[seconds.size() / 2] / 1e9, flop / seconds.front() / 1e9, pd.impl_info_str()};
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int64_t n = argc > 2 ? std::atoll(argv[2]) : 2048;
  const int runs = argc > 3 ? std::atoi(argv[3]) : 15;
  if (threads < 1 || n < 64 || runs < 1) {
    std::fprintf(stderr, "usage: bench_matmul_peak [THREADS>=1] [SIZE>=64] [RUNS>=1]\n");
    return 2;
  }
  omp_set_num_threads(threads);
  std::printf("oneDNN matmul %lldx%lldx%lld, %d threads, %d runs\n", static_cast<long long>(n),
              static_cast<long long>(n), static_cast<long long>(n), threads, runs);
  struct Case {
    const char* name;
    dt src, wei, dst;
  };
  for (const Case& c : {Case{"fp32", dt::f32, dt::f32, dt::f32}, Case{"bf16", dt::bf16, dt::bf16, dt::f32},
                        Case{"int8", dt::u8, dt::s8, dt::s32}}) {
    try {
      const Result r = time_matmul(c.src, c.wei, c.dst, n, runs);
      std::printf("%-5s median %7.1f GFLOP/s  best %7.1f  (%s)\n", c.name, r.median_gflops, r.best_gflops, r.impl);
    } catch (const dnnl::error& e) {
      std::printf("%-5s not available: %s\n", c.name, e.what());
    }
  }
  return 0;
}
