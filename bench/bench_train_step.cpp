// One training step (forward + DiceBCE + backward + Adam) of M1 with the frozen encoder,
// batch 16 at 256×256 by default — the step `leanseg train --preset hc18` repeats. Prints the
// median / min / max over --reps steps as JSON, so bench/train_step_vs_pytorch.sh can compare
// it with the same step in PyTorch measured in the same run. Beside time it reports, per timed
// step, the minor page faults and the kernel (system) CPU seconds, and the peak RSS: with
// --system-malloc glibc's default policy (large blocks returned to the kernel on free) is kept,
// to measure what keep_freed_memory() saves in the same run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <memory>
#include <vector>

#include <torch/csrc/autograd/profiler_legacy.h>

#include "leanseg/memory.h"
#include "leanseg/model.h"
#include "leanseg/threads.h"
#include "leanseg/train.h"

int main(int argc, char** argv) {
  int batch = 16, size = 256, reps = 10, threads = static_cast<int>(std::thread::hardware_concurrency());
  std::string model_name = "mobilenet-aspp-se-unet", profile_path;
  bool channels_last = false, system_malloc = false, bf16 = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return std::string(i + 1 < argc ? argv[++i] : ""); };
    if (a == "--batch") batch = std::stoi(next());
    else if (a == "--size") size = std::stoi(next());
    else if (a == "--reps") reps = std::stoi(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--model") model_name = next();
    else if (a == "--channels-last") channels_last = true;
    else if (a == "--system-malloc") system_malloc = true;
    else if (a == "--bf16") bf16 = true;  // bf16 mixed precision (leanseg::Bf16Autocast), as `train --bf16`
    else if (a == "--profile") profile_path = next();  // chrome trace of one extra step after the timed ones
  }
  if (!system_malloc) leanseg::keep_freed_memory();  // as leanseg's executables do
  leanseg::set_cpu_threads(threads);  // as `leanseg train` does (OpenBLAS kept at 1 thread)
  torch::manual_seed(0);
  auto model = leanseg::create_model(model_name);
  model->train();
  std::vector<torch::Tensor> trainable;
  for (auto& p : model->parameters())
    if (p.requires_grad()) trainable.push_back(p);
  torch::optim::Adam opt(trainable, torch::optim::AdamOptions(3e-4).weight_decay(1e-4));
  auto x = torch::randn({batch, 1, size, size});
  auto y = (torch::rand({batch, 1, size, size}) > 0.7).to(torch::kFloat32);
  if (channels_last) {
    torch::NoGradGuard no_grad;  // nn::Module has no to(MemoryFormat) in C++: convert 4-D weights
    for (auto& p : model->parameters())
      if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
    x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  }
  leanseg::LossOptions lo;
  auto step_loss = [&] {  // forward and loss, under bf16 autocast with --bf16 (as `train --bf16`)
    leanseg::Bf16Autocast autocast(bf16);
    return leanseg::segmentation_loss(model->forward(x), y, lo);
  };
  std::vector<double> ms;
  leanseg::ProcessUsage before;
  for (int r = 0; r < reps + 2; ++r) {
    if (r == 2) before = leanseg::process_usage();
    const auto t0 = std::chrono::steady_clock::now();
    opt.zero_grad();
    step_loss().backward();
    opt.step();
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (r >= 2) ms.push_back(dt);  // two warm-up steps
  }
  const leanseg::ProcessUsage after = leanseg::process_usage();
  if (!profile_path.empty()) {
    torch::autograd::profiler::RecordProfile profile(profile_path);
    opt.zero_grad();
    step_loss().backward();
    opt.step();
  }
  std::sort(ms.begin(), ms.end());
  std::printf("{\"impl\": \"leanseg\", \"model\": \"%s\", \"batch\": %d, \"size\": %d, \"threads\": %d, "
              "\"channels_last\": %s, \"bf16\": %s, \"malloc\": \"%s\", \"reps\": %d, \"median_ms\": %.1f, \"min_ms\": %.1f, "
              "\"max_ms\": %.1f, \"minor_faults_per_step\": %.0f, \"system_s_per_step\": %.3f, "
              "\"user_s_per_step\": %.3f, \"peak_rss_mb\": %.0f}\n",
              model_name.c_str(), batch, size, threads, channels_last ? "true" : "false", bf16 ? "true" : "false",
              system_malloc ? "system" : "kept", reps, ms[ms.size() / 2], ms.front(), ms.back(),
              double(after.minor_faults - before.minor_faults) / reps, (after.system_seconds - before.system_seconds) / reps,
              (after.user_seconds - before.user_seconds) / reps, after.peak_rss_bytes / 1e6);
  return 0;
}
