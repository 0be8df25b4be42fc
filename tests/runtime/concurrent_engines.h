// The engine's threading contract (include/leanseg/runtime.h), checked the same way on zoo models
// (test_engine_threads.cpp, LibTorch-built) and on hand-built graphs (test_engine_ops.cpp,
// LibTorch-free, so that scripts/test_tsan.sh can run it under ThreadSanitizer).
#pragma once
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "leanseg/runtime.h"

namespace leanseg::test {

struct EngineJob {
  const RuntimeModel* model;
  runtime::EngineOptions options;
  std::vector<float> input, serial, concurrent;
};

// Runs every job's engine alone (the reference), then jobs 0 and 1 alternating in this thread
// (two engines of different settings in one host thread), then every job in a host thread of
// its own, all at once, each planning and running its own engine three times: every result must
// equal the serial one bit for bit.
inline void expect_concurrent_runs_match_serial(std::vector<EngineJob>& jobs) {
  for (auto& job : jobs) {
    auto engine = runtime::Engine::from_model(*job.model, job.options);
    job.serial = engine.run(job.input.data());
  }
  {
    auto a = runtime::Engine::from_model(*jobs[0].model, jobs[0].options);
    auto b = runtime::Engine::from_model(*jobs[1].model, jobs[1].options);
    for (int r = 0; r < 2; ++r) {
      EXPECT_EQ(a.run(jobs[0].input.data()), jobs[0].serial);
      EXPECT_EQ(b.run(jobs[1].input.data()), jobs[1].serial);
    }
  }
  std::vector<std::thread> threads;
  for (auto& job : jobs)
    threads.emplace_back([&job] {
      auto engine = runtime::Engine::from_model(*job.model, job.options);
      for (int r = 0; r < 3; ++r) job.concurrent = engine.run(job.input.data());
    });
  for (auto& t : threads) t.join();
  for (size_t j = 0; j < jobs.size(); ++j) {
    ASSERT_EQ(jobs[j].concurrent.size(), jobs[j].serial.size());
    EXPECT_EQ(jobs[j].concurrent, jobs[j].serial) << "job " << j << " differs from its serial run";
  }
}

}  // namespace leanseg::test
