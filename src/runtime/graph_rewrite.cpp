#include "graph_rewrite.h"

#include <map>
#include <set>

namespace leanseg::runtime {
namespace {

float float_attr(const GraphNode& n, const char* name, float fallback) {
  const auto* a = n.attribute(name);
  return a ? a->f : fallback;
}

bool is_hard_sigmoid(const GraphNode& n, float alpha, float beta) {
  return n.op == "HardSigmoid" && float_attr(n, "alpha", 0.2f) == alpha && float_attr(n, "beta", 0.5f) == beta;
}

bool is_scalar_constant(const Graph& g, const std::string& name, float value) {
  const GraphTensor* t = g.initializer(name);
  return t && t->type == TensorType::F32 && t->f32.size() == 1 && t->f32[0] == value;
}

}  // namespace

std::vector<GraphNode> simplify_for_engine(const Graph& graph) {
  std::map<std::string, int> readers;  // value → how many nodes / graph outputs read it
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const auto& in : graph.nodes[i].inputs) ++readers[in];
    for (const auto& out : graph.nodes[i].outputs) producer[out] = i;
  }
  for (const auto& v : graph.outputs) ++readers[v.name];
  auto produced_by = [&](const std::string& value) -> const GraphNode* {
    auto it = producer.find(value);
    return it == producer.end() ? nullptr : &graph.nodes[it->second];
  };

  std::vector<GraphNode> out;
  std::set<std::string> dropped;  // nodes folded into a later node
  std::vector<GraphNode> nodes = graph.nodes;
  for (auto& n : nodes) {
    if (n.op == "Mul" && n.inputs.size() == 2) {
      // ReLU6: Mul(HardSigmoid(x; 1/6, 0), 6)
      const GraphNode* hs = produced_by(n.inputs[0]);
      if (hs && is_hard_sigmoid(*hs, 1.0f / 6.0f, 0.0f) && readers[hs->outputs[0]] == 1 &&
          is_scalar_constant(graph, n.inputs[1], 6.0f)) {
        dropped.insert(hs->name);
        n.op = "Clip";
        n.inputs = {hs->inputs[0]};
        n.attributes = {GraphAttribute::of("min", 0.0f), GraphAttribute::of("max", 6.0f)};
      }
    } else if (n.op == "Add" && n.inputs.size() == 2) {
      // Exact broadcast: Add(y, Mul(HardSigmoid(y; 0, 1), p)) = Add(y, p)
      const GraphNode* mul = produced_by(n.inputs[1]);
      const GraphNode* ones = mul && mul->op == "Mul" ? produced_by(mul->inputs[0]) : nullptr;
      if (ones && is_hard_sigmoid(*ones, 0.0f, 1.0f) && ones->inputs[0] == n.inputs[0] &&
          readers[mul->outputs[0]] == 1 && readers[ones->outputs[0]] == 1) {
        dropped.insert(mul->name);
        dropped.insert(ones->name);
        n.inputs = {n.inputs[0], mul->inputs[1]};
      }
    }
  }
  for (auto& n : nodes)
    if (!dropped.count(n.name)) out.push_back(std::move(n));
  return out;
}

}  // namespace leanseg::runtime
