// Binding a plan to memory: one arena for every activation and scratchpad, planned from their
// lifetimes (arena.h), and the oneDNN argument maps of every step pointing into it.
#include <algorithm>
#include <cstdio>

#include "arena.h"
#include "engine_impl.h"
#include "leanseg/error.h"
#include "leanseg/limits.h"

namespace leanseg::runtime {

// Arena offsets for every arena value and scratchpad, then the memory objects and argument maps.
void Engine::Impl::bind() {
  std::map<int, size_t> request_of;
  std::vector<ArenaRequest> requests;
  for (size_t v = 0; v < values.size(); ++v) {
    if (values[v].host) continue;
    const int r = storage_root(static_cast<int>(v));
    auto it = request_of.find(r);
    if (it == request_of.end()) {
      request_of[r] = requests.size();
      requests.push_back({values[r].md.get_size(), values[v].first, values[v].last});
    } else {
      auto& q = requests[it->second];
      q.first_step = std::min(q.first_step, values[v].first);
      q.last_step = std::max(q.last_step, values[v].last);
      q.bytes = std::max(q.bytes, values[v].md.get_size());
    }
  }
  // Scratchpads (oneDNN's, and the Winograd kernel's transformed weights and tiles: MBs) live
  // for one step: planned in the arena too, they reuse bytes of activations dead at that step.
  std::map<size_t, size_t> scratch_request_of;  // step → request
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& s = steps[i];
    const size_t bytes = s.kind == Step::Kind::Primitive ? s.scratchpad.get_size() : s.scratch_bytes;
    if (bytes > 0) {
      scratch_request_of[i] = requests.size();
      requests.push_back({bytes, static_cast<int>(i), static_cast<int>(i)});
    }
  }
  const ArenaPlan plan = plan_arena(requests);
  // Refused before anything is allocated: an input size or graph that needs more memory than
  // any deployment has would otherwise end in bad_alloc (or the OOM killer) minutes later.
  const uint64_t estimate =
      plan.total_bytes + 64 + static_cast<uint64_t>(values[output_value].dims[1]) * height * width * sizeof(float);
  if (estimate > kMaxArenaBytes) {
    char gib[32];
    std::snprintf(gib, sizeof gib, "%.1f", static_cast<double>(estimate) / (1ull << 30));
    throw Error("runtime model '" + model.graph.name + "': input " + std::to_string(height) + "x" +
                std::to_string(width) + " (HxW) needs an estimated " + gib + " GiB of activation memory, more than the " +
                std::to_string(kMaxArenaBytes >> 30) + " GiB limit");
  }
  arena.assign(plan.total_bytes + 64, 0);
  output.assign(static_cast<size_t>(values[output_value].dims[1]) * height * width, 0.f);
  unsigned char* base = arena.data() + (64 - reinterpret_cast<uintptr_t>(arena.data()) % 64) % 64;
  for (size_t v = 0; v < values.size(); ++v)
    if (!values[v].host)
      values[v].mem = memory(values[v].md, cpu, base + plan.offsets[request_of[storage_root(static_cast<int>(v))]]);

  for (size_t i = 0; i < steps.size(); ++i) {
    Step& s = steps[i];
    auto r = scratch_request_of.find(i);
    if (s.kind == Step::Kind::Winograd) {
      s.scratch = reinterpret_cast<float*>(base + plan.offsets[r->second]);
      s.winograd_sources.clear();
      for (const auto& [v, depth_to_space] : s.winograd_inputs)
        s.winograd_sources.push_back({static_cast<const float*>(values[v].mem.get_data_handle()),
                                      depth_to_space ? values[v].dims[1] / 4 : values[v].dims[1], depth_to_space});
    }
    if (s.kind != Step::Kind::Primitive) continue;
    s.args = s.fixed_args;
    for (const auto& [arg, v] : s.value_args) {
      auto view = s.views.find(arg);
      s.args[arg] = view == s.views.end() ? values[v].mem : memory(view->second, cpu, values[v].mem.get_data_handle());
    }
    if (r != scratch_request_of.end()) s.args[DNNL_ARG_SCRATCHPAD] = memory(s.scratchpad, cpu, base + plan.offsets[r->second]);
  }
  steps[0].args[DNNL_ARG_FROM] = input_user;
  if (!values[output_value].host)
    output_user = memory({values[output_value].dims, dt::f32, tag::nchw}, cpu, output.data());
}

}  // namespace leanseg::runtime
