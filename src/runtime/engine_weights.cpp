// Weight lifecycle of the engine: the simplified graph's constants, and the conv weights of a
// .lsr file dropped from memory once packed and read back when a new input size needs them.
#include <cstring>

#include "engine_impl.h"
#include "graph_rewrite.h"
#include "leanseg/error.h"

namespace leanseg::runtime {

void Engine::Impl::simplify() {
  // The rewrite reads the weights it rearranges: bring back those dropped after an earlier plan.
  if (source)
    for (auto& t : model.graph.initializers)
      if (t.type == TensorType::F32 && t.f32.empty() && readers[t.name] == 0 && source->find(t.name)) fetch(t);
  SimplifiedGraph simplified = simplify_for_engine(model.graph);
  nodes = std::move(simplified.nodes);
  rewritten_constants = std::move(simplified.new_constants);
  constants.clear(), readers.clear();
  for (const auto& t : model.graph.initializers) constants[t.name] = &t;
  for (const auto& t : rewritten_constants) constants[t.name] = &t;
  for (const auto& n : nodes)
    for (const auto& in : n.inputs) ++readers[in];
  for (const auto& v : model.graph.outputs) ++readers[v.name];
  // Initializers the simplification replaced (e.g. transposed-conv weights rearranged into a
  // 1x1 conv) are dead: free them now.
  for (auto& t : model.graph.initializers)
    if (GraphTensor* dead = droppable(t.name, 0)) drop(*dead);
  rewritten_dropped = false;
}

GraphTensor* Engine::Impl::droppable_rewritten(const std::string& name) {
  if (!source || readers[name] != 1) return nullptr;
  for (auto& t : rewritten_constants)
    if (t.name == name) return &t;
  return nullptr;
}

GraphTensor* Engine::Impl::droppable(const std::string& name, int readers_needed) {
  if (!source || source->find(name) == nullptr) return nullptr;
  auto r = readers.find(name);
  if ((r == readers.end() ? 0 : r->second) != readers_needed) return nullptr;
  for (auto& t : model.graph.initializers)
    if (t.name == name && t.type == TensorType::F32) return &t;
  return nullptr;
}

void Engine::Impl::fetch(GraphTensor& t) {
  const TensorInfo& info = source->at(t.name);
  require(info.shape == t.shape, "runtime model '" + source->path() + "': tensor '" + t.name + "' changed on disk");
  t.f32.resize(static_cast<size_t>(t.numel()));
  source->read(info, t.f32.data());
}

memory Engine::Impl::constant_memory(const GraphTensor& t, memory::dims dims, memory::format_tag format) {
  require(t.type == TensorType::F32, "runtime model: constant '" + t.name + "' is not float");
  memory m({dims, dt::f32, format}, cpu);
  std::memcpy(m.get_data_handle(), t.f32.data(), t.f32.size() * sizeof(float));
  return m;
}

}  // namespace leanseg::runtime
