// `leanseg doctor`: which BLAS library, oneDNN ISA and thread count this process really uses,
// plus a quick GEMM and conv throughput check. Debian's default libblas.so.3 is the netlib
// reference build (~2 GFLOP/s); LibTorch routes some layers through it, so we say loudly when
// it is the one loaded.
#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <dnnl.h>
#include <torch/torch.h>

#include "commands.h"
#include "leanseg/runtime.h"
#include "leanseg/threads.h"

namespace leanseg::cli {
namespace {

std::vector<std::string> loaded_libraries_matching(const std::string& needle) {
  std::vector<std::string> found;
  std::pair<std::string, std::vector<std::string>*> ctx(needle, &found);
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* ctx = static_cast<std::pair<std::string, std::vector<std::string>*>*>(data);
        std::string name = info->dlpi_name ? info->dlpi_name : "";
        if (name.find(ctx->first) != std::string::npos) {
          std::error_code ec;
          auto real = std::filesystem::canonical(name, ec);
          ctx->second->push_back(name + (ec ? "" : " -> " + real.string()));
        }
        return 0;
      },
      &ctx);
  return found;
}

const char* isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx (AMX int8/bf16)";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    default: return "other";
  }
}

template <class Fn>
double median_gflops(double flop, Fn&& fn, int reps = 7) {
  std::vector<double> rates;
  fn();  // warm-up
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(flop / s / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

void run_doctor() {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({512, 512}), b = torch::randn({512, 512});
  const double gemm = median_gflops(2.0 * 512 * 512 * 512, [&] { torch::mm(a, b); });
  auto x = torch::randn({1, 64, 128, 128});
  auto w = torch::randn({64, 64, 3, 3});
  const double conv = median_gflops(2.0 * 128 * 128 * 64 * 64 * 9, [&] { torch::conv2d(x, w, {}, 1, 1); });

  std::printf("leanseg %s\n", "0.1.0");
  std::printf("LibTorch          %s\n", TORCH_VERSION);
  std::printf("threads           %d (intra-op), %d (inter-op), %u hardware\n", at::get_num_threads(),
              at::get_num_interop_threads(), std::thread::hardware_concurrency());
  const auto v = dnnl_version();
  std::printf("oneDNN            %d.%d.%d, effective ISA %s\n", v->major, v->minor, v->patch,
              isa_name(dnnl_get_effective_cpu_isa()));
  auto blas = loaded_libraries_matching("blas");
  bool netlib = false;
  for (const auto& l : blas) {
    std::printf("BLAS              %s\n", l.c_str());
    if (l.find("/blas/libblas") != std::string::npos) netlib = true;
  }
  if (blas.empty()) std::printf("BLAS              (none loaded)\n");
  if (const int t = openblas_threads()) std::printf("OpenBLAS threads  %d (LibTorch parallelises around it)\n", t);
  std::printf("sgemm 512^3       %.1f GFLOP/s (median of 7)\n", gemm);
  std::printf("conv 64x64x3x3    %.1f GFLOP/s at 128x128 (median of 7)\n", conv);
  const char* policy = std::getenv("LEANSEG_OPENMP_POLICY");
  const char* user_wait = std::getenv("OMP_WAIT_POLICY");
  const char* user_spin = std::getenv("GOMP_SPINCOUNT");
  const std::string source = policy ? std::string(policy) + " (leanseg's default)"
                             : user_wait ? std::string("OMP_WAIT_POLICY=") + user_wait + " (yours)"
                             : user_spin ? std::string("GOMP_SPINCOUNT=") + user_spin + " (yours)"
                                         : std::string("libgomp's default");
  const double spin = runtime::measure_openmp_spin_ms(30);
  std::printf("OpenMP waiting    %s: an idle thread spins %.1f ms before it sleeps (measured, of 30)\n",
              source.c_str(), spin);
  if (spin > 10)
    std::printf("WARNING: OpenMP threads spin for long: beside other processes on few cores, inference can be\n"
                "         10-30x slower (see README, latency under load); unset OMP_WAIT_POLICY=active\n");
  const int runnable = runtime::runnable_tasks();
  const unsigned cores = std::thread::hardware_concurrency();
  if (runnable >= 0) {
    std::printf("runnable tasks    %d on %u cores (this one included)\n", runnable, cores);
    if (runnable > static_cast<int>(cores))
      std::printf("WARNING: the machine is oversubscribed (%d runnable tasks on %u cores): timings will be slower and\n"
                  "         noisier; measure with fewer threads (--threads) or when the machine is quieter\n",
                  runnable, cores);
  }
  if (netlib || gemm < 10)
    std::printf("WARNING: the slow netlib reference BLAS is in use; run scripts/setup.sh (installs OpenBLAS)\n");
}

}  // namespace

void add_doctor(CLI::App& app) {
  auto* cmd = app.add_subcommand("doctor", "Show the BLAS, oneDNN ISA and threads in use, with a quick speed check");
  cmd->callback([] { run_doctor(); });
}

}  // namespace leanseg::cli
