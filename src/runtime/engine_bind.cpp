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
    const auto* p = std::get_if<PrimitiveStep>(&steps[i].work);
    const auto* w = std::get_if<WinogradStep>(&steps[i].work);
    const size_t bytes = p ? p->scratchpad.get_size() : w ? w->scratch_bytes : 0;
    if (bytes > 0) {
      scratch_request_of[i] = requests.size();
      requests.push_back({bytes, static_cast<int>(i), static_cast<int>(i)});
    }
  }
  const ArenaPlan plan = plan_arena(requests);
  // Refused before anything is allocated: an input size or graph that needs more memory than
  // any deployment has would otherwise end in bad_alloc (or the OOM killer) minutes later.
  uint64_t output_bytes = sizeof(float);
  for (const auto d : values[output_value].dims) output_bytes *= static_cast<uint64_t>(d);
  const uint64_t estimate = plan.total_bytes + 64 + output_bytes;
  if (estimate > kMaxArenaBytes) {
    char gib[32];
    std::snprintf(gib, sizeof gib, "%.1f", static_cast<double>(estimate) / (1ull << 30));
    throw Error("runtime model '" + model.graph.name + "': input " + std::to_string(height) + "x" +
                std::to_string(width) + " (HxW) needs an estimated " + gib + " GiB of activation memory, more than the " +
                std::to_string(kMaxArenaBytes >> 30) + " GiB limit");
  }
  // Sized for this plan; an arena shared with the plan for fewer threads only grows (to the
  // larger plan), and the other plan is then bound again (plan_for_threads). Nothing relies on
  // its contents at a run's start: every value is written before it is read.
  const size_t arena_bytes = plan.total_bytes + 64;
  if (arena.use_count() == 1 ? arena->size() != arena_bytes : arena->size() < arena_bytes)
    *arena = std::vector<unsigned char>(arena_bytes, 0);
  // Sized from what the graph computes (a segmentation model's 1 x H x W logits; any shape a
  // graph built in memory has): never from an assumption about the model.
  size_t output_floats = 1;
  for (const auto d : values[output_value].dims) output_floats *= static_cast<size_t>(d);
  output.assign(output_floats, 0.f);
  unsigned char* base = arena->data() + (64 - reinterpret_cast<uintptr_t>(arena->data()) % 64) % 64;
  for (size_t v = 0; v < values.size(); ++v)
    if (!values[v].host)
      values[v].mem = memory(values[v].md, cpu, base + plan.offsets[request_of[storage_root(static_cast<int>(v))]]);

  for (size_t i = 0; i < steps.size(); ++i) {
    auto r = scratch_request_of.find(i);
    if (auto* w = std::get_if<WinogradStep>(&steps[i].work)) {
      w->scratch = reinterpret_cast<float*>(base + plan.offsets[r->second]);
      w->sources.clear();
      for (const auto& [v, depth_to_space] : w->inputs)
        w->sources.push_back({static_cast<const float*>(values[v].mem.get_data_handle()),
                              depth_to_space ? values[v].dims[1] / 4 : values[v].dims[1], depth_to_space});
    }
    auto* p = std::get_if<PrimitiveStep>(&steps[i].work);
    if (!p) continue;
    p->args = p->fixed_args;
    for (const auto& [arg, v] : p->value_args) {
      auto view = p->views.find(arg);
      p->args[arg] = view == p->views.end() ? values[v].mem : memory(view->second, cpu, values[v].mem.get_data_handle());
    }
    if (r != scratch_request_of.end()) p->args[DNNL_ARG_SCRATCHPAD] = memory(p->scratchpad, cpu, base + plan.offsets[r->second]);
  }
  std::get<PrimitiveStep>(steps[0].work).args[DNNL_ARG_FROM] = input_user;  // the input reorder
  if (!values[output_value].host)
    output_user = memory({values[output_value].dims, dt::f32, tag::nchw}, cpu, output.data());
}

}  // namespace leanseg::runtime
