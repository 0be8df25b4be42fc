#include "leanseg/graph.h"

#include <set>

#include "leanseg/error.h"

namespace leanseg {

GraphAttribute GraphAttribute::of(std::string name, int64_t v) {
  GraphAttribute a;
  a.name = std::move(name);
  a.kind = Kind::Int;
  a.i = v;
  return a;
}

GraphAttribute GraphAttribute::of(std::string name, float v) {
  GraphAttribute a;
  a.name = std::move(name);
  a.kind = Kind::Float;
  a.f = v;
  return a;
}

GraphAttribute GraphAttribute::of(std::string name, std::vector<int64_t> v) {
  GraphAttribute a;
  a.name = std::move(name);
  a.kind = Kind::Ints;
  a.ints = std::move(v);
  return a;
}

const GraphAttribute* GraphNode::attribute(const std::string& attr_name) const {
  for (const auto& a : attributes)
    if (a.name == attr_name) return &a;
  return nullptr;
}

int64_t GraphTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const GraphTensor* Graph::initializer(const std::string& tensor_name) const {
  for (const auto& t : initializers)
    if (t.name == tensor_name) return &t;
  return nullptr;
}

std::map<std::string, int> Graph::op_counts() const {
  std::map<std::string, int> counts;
  for (const auto& n : nodes) ++counts[n.op];
  return counts;
}

int64_t Graph::parameter_count() const {
  int64_t n = 0;
  for (const auto& t : initializers)
    if (t.type == TensorType::F32 || t.type == TensorType::I8) n += t.numel();
  return n;
}

void Graph::validate() const {
  std::set<std::string> defined, node_names;
  auto define = [&](const std::string& value, const std::string& who) {
    require(!value.empty(), "graph '" + name + "': " + who + " defines an unnamed value");
    require(defined.insert(value).second, "graph '" + name + "': value '" + value + "' defined twice (" + who + ")");
  };
  for (const auto& v : inputs) {
    require(v.shape.size() == v.dim_names.size(), "graph '" + name + "': input '" + v.name + "' has " +
                                                      std::to_string(v.shape.size()) + " axes but " +
                                                      std::to_string(v.dim_names.size()) + " axis names");
    define(v.name, "graph input");
  }
  for (const auto& t : initializers) {
    const size_t stored = t.type == TensorType::F32 ? t.f32.size() : t.type == TensorType::I64 ? t.i64.size() : t.i8.size();
    require(static_cast<int64_t>(stored) == t.numel(), "graph '" + name + "': initializer '" + t.name + "' holds " +
                                                           std::to_string(stored) + " values for " +
                                                           std::to_string(t.numel()) + " elements");
    define(t.name, "initializer");
  }
  for (const auto& n : nodes) {
    const std::string who = n.op + " node '" + n.name + "'";
    require(node_names.insert(n.name).second, "graph '" + name + "': two nodes named '" + n.name + "'");
    for (const auto& in : n.inputs)
      require(in.empty() || defined.count(in), "graph '" + name + "': " + who + " reads '" + in +
                                                   "' before anything defines it");
    require(!n.outputs.empty(), "graph '" + name + "': " + who + " has no outputs");
    for (const auto& out : n.outputs) define(out, who);
  }
  for (const auto& v : outputs)
    require(defined.count(v.name), "graph '" + name + "': output '" + v.name + "' is never produced");
}

}  // namespace leanseg
