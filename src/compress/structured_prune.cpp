// Structured pruning (C2): rank the channels of each channel group by importance, then cut the
// least important ones out of every tensor of the group at once.
#include <algorithm>
#include <map>
#include <numeric>

#include "compress/prune.h"
#include "leanseg/compress.h"
#include "leanseg/error.h"

namespace leanseg {
namespace {

using TensorDict = torch::OrderedDict<std::string, torch::Tensor>;

struct ModelTensors {
  TensorDict params, buffers;
  explicit ModelTensors(const torch::nn::Module& m) : params(m.named_parameters(true)), buffers(m.named_buffers(true)) {}
  const torch::Tensor& get(const std::string& name) const {
    if (const auto* p = params.find(name)) return *p;
    if (const auto* b = buffers.find(name)) return *b;
    throw Error("structured pruning: the model has no tensor '" + name + "'");
  }
  bool frozen(const std::string& name) const {
    const auto* p = params.find(name);
    return p != nullptr && !p->requires_grad();
  }
};

// Σ|W| over every axis but `axis`, as float64 [C].
torch::Tensor abs_sum(const torch::Tensor& w, int axis) {
  auto a = w.detach().abs().to(torch::kFloat64).transpose(0, axis).contiguous();
  return a.reshape({a.size(0), -1}).sum(1);
}

// Channel importance of a group: each producer's Σ|w_c| (× |γ_c| / σ_c of its BatchNorm),
// normalised to sum 1 so that a projection and a 3×3 conv count alike, summed over producers.
torch::Tensor importance(const ChannelGroup& g, const ModelTensors& t) {
  auto total = torch::zeros({g.channels}, torch::kFloat64);
  for (const auto& p : g.producers) {
    auto s = abs_sum(t.get(p.weight), p.axis);
    if (!p.bn.empty()) {
      const auto gamma = t.get(p.bn + ".weight").detach().to(torch::kFloat64).abs();
      const auto var = t.get(p.bn + ".running_var").detach().to(torch::kFloat64);
      s = s * gamma / torch::sqrt(var + 1e-5);
    }
    require(s.size(0) == g.channels, "structured pruning: producer '" + p.weight + "' of group '" + g.name +
                                          "' has " + std::to_string(s.size(0)) + " channels, expected " +
                                          std::to_string(g.channels));
    const double sum = s.sum().item<double>();
    total += sum > 0 ? s / sum : s;
  }
  return total;
}

// The k least important channels, ascending by index; ties broken by index.
std::vector<int64_t> least_important(const torch::Tensor& score, int64_t k) {
  const auto* v = score.data_ptr<double>();
  std::vector<int64_t> order(static_cast<size_t>(score.size(0)));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [v](int64_t a, int64_t b) { return v[a] < v[b]; });
  std::vector<int64_t> out(order.begin(), order.begin() + k);
  std::sort(out.begin(), out.end());
  return out;
}

// Per tensor and axis: the indices to remove (each group's channels shifted by its slot offset).
using Removals = std::map<std::string, std::map<int, std::vector<int64_t>>>;
Removals removals(const StructuredPlan& plan) {
  Removals r;
  for (size_t g = 0; g < plan.groups.size(); ++g)
    for (const auto& s : plan.groups[g].slots)
      for (int64_t c : plan.removed[g]) r[s.tensor][s.axis].push_back(s.offset + c);
  for (auto& [name, axes] : r)
    for (auto& [axis, idx] : axes) {
      std::sort(idx.begin(), idx.end());
      require(std::adjacent_find(idx.begin(), idx.end()) == idx.end(),
              "structured pruning: channel groups overlap on axis " + std::to_string(axis) + " of '" + name + "'");
    }
  return r;
}

bool is_running_stat(const std::string& name) {
  auto ends = [&](const std::string& s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
  return ends(".running_mean") || ends(".running_var") || ends(".num_batches_tracked");
}

}  // namespace

StructuredPlan structured_plan(const SegmentationModelImpl& m, const StructuredPruneOptions& o) {
  check_sparsity(o.ratio, "structured pruning");
  const ModelTensors t(m);
  StructuredPlan plan;
  for (auto& g : m.channel_groups()) {
    const bool touches_frozen =
        std::any_of(g.slots.begin(), g.slots.end(), [&](const ChannelSlot& s) { return t.frozen(s.tensor); });
    if (touches_frozen && !o.allow_frozen) {
      plan.skipped_frozen.push_back(g.name);
      continue;
    }
    const int64_t k = std::min(g.channels - 1, prune_count(o.ratio, g.channels));
    plan.removed.push_back(least_important(importance(g, t), k));
    plan.channels += g.channels;
    plan.removed_channels += k;
    plan.groups.push_back(std::move(g));
  }
  require(!plan.groups.empty(), m.config().arch + ": no channel group can be pruned structurally" +
                                    std::string(plan.skipped_frozen.empty() ? "" : " (all touch frozen weights; pass --prune-frozen)"));
  return plan;
}

void mask_structured(SegmentationModelImpl& m, const StructuredPlan& plan) {
  const ModelTensors t(m);
  torch::NoGradGuard no_grad;
  for (const auto& [name, axes] : removals(plan)) {
    if (is_running_stat(name)) continue;  // γ = β = 0 already silences the channel
    auto tensor = t.get(name);
    for (const auto& [axis, idx] : axes) tensor.index_fill_(axis, torch::tensor(idx, torch::kInt64), 0.0);
  }
}

void apply_structured(SegmentationModelImpl& m, const StructuredPlan& plan) {
  const ModelTensors t(m);
  std::map<std::string, torch::Tensor> smaller;
  for (const auto& [name, axes] : removals(plan)) {
    auto value = t.get(name).detach();
    for (const auto& [axis, idx] : axes) {
      auto keep = torch::ones({value.size(axis)}, torch::kBool);
      keep.index_fill_(0, torch::tensor(idx, torch::kInt64), false);
      value = value.index_select(axis, keep.nonzero().flatten());
    }
    smaller[name] = value;
  }
  m.replace_tensors(smaller);
}

}  // namespace leanseg
