// The engine as a guest in a host program: it leaves the caller's OpenMP thread setting as it
// found it, and engines used from several host threads at once (each its own engine, with
// different thread counts) give exactly the results of the same engines run one after another.
#include <omp.h>

#include <thread>

#include "leanseg/graph_export.h"
#include "leanseg/runtime.h"
#include "model_test_util.h"

namespace leanseg {
namespace {

RuntimeModel runtime_model(const std::string& name, int64_t size) {
  auto model = test::random_model(name, 1);
  GraphInputShape shape;
  shape.height = size, shape.width = size;
  RuntimeModel rt;
  rt.graph = model_graph(*model, shape);
  rt.size_divisor = model->size_divisor();
  return rt;
}

std::vector<float> noise(size_t n, unsigned seed) {
  torch::manual_seed(seed);
  const torch::Tensor x = torch::randn({static_cast<int64_t>(n)});
  return {x.data_ptr<float>(), x.data_ptr<float>() + n};
}

TEST(EngineThreads, LeavesTheCallersOpenMpThreadCountAsItWas) {
  const RuntimeModel rt = runtime_model("efficient-unet", 64);
  omp_set_num_threads(3);
  auto engine = runtime::Engine::from_model(rt, {runtime::Precision::F32, 1, true});
  EXPECT_EQ(omp_get_max_threads(), 3) << "planning changed the caller's OpenMP threads";
  const std::vector<float> x = noise(64 * 64, 1);
  engine.run(x.data());
  EXPECT_EQ(omp_get_max_threads(), 3) << "running changed the caller's OpenMP threads";
  engine.set_input_size(96, 96);
  EXPECT_EQ(omp_get_max_threads(), 3) << "re-planning changed the caller's OpenMP threads";
  omp_set_num_threads(omp_get_num_procs());
}

TEST(EngineThreads, ConcurrentEnginesMatchSerialRunsExactly) {
  const int64_t size = 64;
  const RuntimeModel m1 = runtime_model("mobilenet-aspp-se-unet", size);
  const RuntimeModel m3 = runtime_model("efficient-unet", size);
  struct Job {
    const RuntimeModel* model;
    runtime::EngineOptions options;
    std::vector<float> input, serial, concurrent;
  };
  std::vector<Job> jobs = {{&m1, {runtime::Precision::F32, 1, true}},
                           {&m1, {runtime::Precision::F32, 2, false}},
                           // bf16 where oneDNN has it (AVX-512), otherwise a second precision all the same
                           {&m3, {runtime::bf16_is_supported_on_this_cpu() ? runtime::Precision::BF16 : runtime::Precision::F32, 2, false}},
                           {&m3, {runtime::Precision::F32, 1, true}}};
  for (size_t j = 0; j < jobs.size(); ++j) jobs[j].input = noise(size * size, 10 + j);
  for (auto& job : jobs) {
    auto engine = runtime::Engine::from_model(*job.model, job.options);
    job.serial = engine.run(job.input.data());
  }
  // Two engines of different thread counts in one host thread, alternating.
  {
    auto a = runtime::Engine::from_model(*jobs[0].model, jobs[0].options);
    auto b = runtime::Engine::from_model(*jobs[1].model, jobs[1].options);
    for (int r = 0; r < 2; ++r) {
      EXPECT_EQ(a.run(jobs[0].input.data()), jobs[0].serial);
      EXPECT_EQ(b.run(jobs[1].input.data()), jobs[1].serial);
    }
  }
  // Four host threads, each planning and running its own engine three times at once.
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

}  // namespace
}  // namespace leanseg
