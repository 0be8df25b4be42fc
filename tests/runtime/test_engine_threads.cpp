// The engine as a guest in a host program: it leaves the caller's OpenMP thread setting as it
// found it, and engines used from several host threads at once (each its own engine, with
// different thread counts) give exactly the results of the same engines run one after another.
#include <omp.h>

#include "concurrent_engines.h"
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
  std::vector<test::EngineJob> jobs = {{&m1, {runtime::Precision::F32, 1, true}},
                                       {&m1, {runtime::Precision::F32, 2, false}},
                                       // bf16 where oneDNN has it (AVX-512), otherwise a second precision all the same
                                       {&m3, {runtime::bf16_is_supported_on_this_cpu() ? runtime::Precision::BF16 : runtime::Precision::F32, 2, false}},
                                       {&m3, {runtime::Precision::F32, 1, true}}};
  for (size_t j = 0; j < jobs.size(); ++j) jobs[j].input = noise(size * size, 10 + j);
  test::expect_concurrent_runs_match_serial(jobs);
}

}  // namespace
}  // namespace leanseg
