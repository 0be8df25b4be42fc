// Runs independent per-sample jobs (decoding, validating) on a few threads. Readers spend
// nearly all their time in PNG/TIFF decoding, which parallelises perfectly.
#pragma once
#include <algorithm>
#include <cstddef>
#include <exception>
#include <functional>
#include <thread>
#include <vector>

namespace leanseg::data_detail {

// Calls job(i) for every i in [0, n). If jobs throw, rethrows the exception of the lowest
// index, so the reported error does not depend on thread timing.
inline void parallel_for_index(size_t n, const std::function<void(size_t)>& job) {
  const size_t threads = std::max<size_t>(1, std::min<size_t>(n, std::thread::hardware_concurrency()));
  std::vector<std::exception_ptr> errors(n);
  auto run_stride = [&](size_t first) {
    for (size_t i = first; i < n; i += threads) {
      try {
        job(i);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(run_stride, t);
  run_stride(0);
  for (auto& th : pool) th.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace leanseg::data_detail
