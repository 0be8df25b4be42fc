// One training step (forward + DiceBCE + backward + Adam) of M1 with the frozen encoder,
// batch 16 at 256×256 by default — the step `leanseg train --preset hc18` repeats. Prints the
// median / min / max over --reps steps as JSON, so bench/train_step_vs_pytorch.sh can compare
// it with the same step in PyTorch measured in the same run. Beside time it reports, per timed
// step, the minor page faults and the kernel (system) CPU seconds, and the peak RSS: with
// --system-malloc glibc's default policy (large blocks returned to the kernel on free) is kept,
// to measure what keep_freed_memory() saves in the same run. --layout-copies lists the layout
// conversions of one extra step (none should be left in a channels-last network but the
// concat gradients' slices); --flush-denormal sets flush-to-zero, to check denormals are not
// what a slow step pays for (measured: ~5 %, within noise).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <memory>
#include <vector>

#include <ATen/record_function.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include "leanseg/memory.h"
#include "leanseg/model.h"
#include "leanseg/ops.h"
#include "leanseg/threads.h"
#include "leanseg/train.h"

namespace {
// --layout-copies: every layout conversion (aten::contiguous that copies) in one step, with the
// tensor's shape and strides and the ops it ran inside. A network kept in one memory format
// makes none of these; each one reads and writes a whole activation or gradient.
thread_local std::vector<std::string> t_open_ops;
struct LayoutCopies { int count = 0; double megabytes = 0; };
LayoutCopies g_layout_copies;

std::string dims(c10::IntArrayRef d) {
  std::string s;
  for (auto v : d) s += (s.empty() ? "" : ",") + std::to_string(v);
  return "[" + s + "]";
}

std::unique_ptr<at::ObserverContext> on_op_start(const at::RecordFunction& fn) {
  const std::string name = fn.name();
  if (name == "aten::contiguous" && fn.num_inputs() > 0 && fn.inputs()[0].isTensor()) {
    const at::Tensor t = fn.inputs()[0].toTensor();
    std::string where;
    for (size_t i = t_open_ops.size(); i-- > 0 && t_open_ops.size() - i <= 3;) where += " < " + t_open_ops[i];
    std::fprintf(stderr, "layout copy %s strides %s%s\n", dims(t.sizes()).c_str(), dims(t.strides()).c_str(), where.c_str());
    ++g_layout_copies.count;
    g_layout_copies.megabytes += t.numel() * t.element_size() / 1e6;
  }
  t_open_ops.push_back(name);
  return nullptr;
}

void on_op_end(const at::RecordFunction&, at::ObserverContext*) {
  if (!t_open_ops.empty()) t_open_ops.pop_back();
}
}  // namespace

int main(int argc, char** argv) {
  int batch = 16, size = 256, reps = 10, threads = static_cast<int>(std::thread::hardware_concurrency());
  std::string model_name = "mobilenet-aspp-se-unet", profile_path;
  bool channels_last = false, system_malloc = false, bf16 = false, layout_copies = false;
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
    else if (a == "--layout-copies") layout_copies = true;  // list the layout conversions of one extra step
    else if (a == "--flush-denormal") at::globalContext().setFlushDenormal(true);
    else if (a == "--print-training-layout") {  // the layout flag `leanseg train` picks on this CPU (for scripts)
      std::puts(leanseg::channels_last_trains_faster_on_this_cpu() ? "--channels-last" : "");
      return 0;
    }
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
  if (channels_last) {  // as `leanseg train` does
    leanseg::convert_to_channels_last(*model);
    x = leanseg::to_channels_last(x);
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
  if (layout_copies) {
    auto handle = at::addGlobalCallback(at::RecordFunctionCallback(on_op_start, on_op_end).needsInputs(true));
    opt.zero_grad();
    step_loss().backward();
    opt.step();
    at::removeCallback(handle);
    std::fprintf(stderr, "%d layout copies, %.0f MB, in one step\n", g_layout_copies.count, g_layout_copies.megabytes);
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
