#include "leanseg/threads.h"

#include <dlfcn.h>

#include <thread>

#include <ATen/Parallel.h>

namespace leanseg {
namespace {

// Looked up at run time: libblas.so.3 may be OpenBLAS or another BLAS, and leanseg does not
// link OpenBLAS by name.
template <typename Fn>
Fn openblas_symbol(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

void set_cpu_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  if (auto set = openblas_symbol<void (*)(int)>("openblas_set_num_threads")) set(1);
}

int openblas_threads() {
  auto get = openblas_symbol<int (*)()>("openblas_get_num_threads");
  return get ? get() : 0;
}

}  // namespace leanseg
