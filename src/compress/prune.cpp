// Magnitude pruning (C1): θ = percentile(|W|, p), W' = W ⊙ M, global or per layer.
#include "compress/prune.h"

#include <cmath>

#include "leanseg/error.h"

namespace leanseg {
namespace {

bool has_prefix(const std::string& name, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes)
    if (name.rfind(p, 0) == 0) return true;
  return false;
}

std::string join_names(const std::vector<std::string>& names, size_t show = 3) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < show; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > show) s += " and " + std::to_string(names.size() - show) + " more";
  return s;
}

struct Selected {
  std::string name;
  torch::Tensor weight;
};

// The weights o asks for, enforcing the frozen-encoder rule.
std::vector<Selected> select_weights(const torch::nn::Module& m, const PruneOptions& o, PruneResult& r) {
  std::vector<Selected> out;
  std::vector<std::string> frozen_selected;
  for (const auto& [name, w] : compressible_weights(m)) {
    if (!o.layers.empty() && !has_prefix(name, o.layers)) continue;
    if (!w.requires_grad() && !o.allow_frozen) {
      // By default frozen weights are simply not part of "every trainable weight"; naming them
      // explicitly is a mistake worth stopping for.
      (o.layers.empty() ? r.skipped_frozen : frozen_selected).push_back(name);
      continue;
    }
    out.push_back({name, w});
  }
  if (!frozen_selected.empty())
    throw Error("pruning would change the frozen encoder; pass --prune-frozen to allow it (frozen weights selected: " +
                join_names(frozen_selected) + ")");
  if (out.empty()) {
    std::string prefixes;
    for (const auto& p : o.layers) prefixes += (prefixes.empty() ? "" : ",") + p;
    throw Error(o.layers.empty() ? std::string("pruning: the model has no trainable conv/linear weight to prune") +
                                       (r.skipped_frozen.empty() ? "" : " (all are frozen; pass --prune-frozen)")
                                 : "--prune-layers '" + prefixes + "': matches no conv/linear weight of the model");
  }
  return out;
}

// Masks over `weights` zeroing exactly k elements: all |w| < θ and, of those equal to θ (the
// k-th smallest |w|), the first ones in position order.
std::vector<torch::Tensor> smallest_k_masks(const std::vector<torch::Tensor>& weights, int64_t k, double& theta) {
  std::vector<torch::Tensor> magnitudes;
  for (const auto& w : weights) magnitudes.push_back(w.detach().abs().flatten().to(torch::kFloat32));
  std::vector<torch::Tensor> masks;
  if (k == 0) {
    theta = 0;
    for (const auto& w : weights) masks.push_back(torch::ones(w.sizes(), torch::kBool));
    return masks;
  }
  const auto all = magnitudes.size() == 1 ? magnitudes[0] : torch::cat(magnitudes);
  const float t = std::get<0>(torch::kthvalue(all, k)).item<float>();
  theta = t;
  int64_t ties_left = k - (all < t).sum().item<int64_t>();
  for (size_t i = 0; i < weights.size(); ++i) {
    auto keep = magnitudes[i] > t;
    const auto tied = magnitudes[i] == t;
    const int64_t n_tied = tied.sum().item<int64_t>();
    if (n_tied > 0) {
      // The first `ties_left` tied positions are pruned, the rest kept.
      const auto rank = tied.to(torch::kInt64).cumsum(0);
      keep = keep | (tied & (rank > ties_left));
      ties_left -= std::min(ties_left, n_tied);
    }
    masks.push_back(keep.reshape(weights[i].sizes()));
  }
  return masks;
}

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> compressible_weights(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : m.named_modules("", /*include_self=*/true)) {
    const auto& mod = item.value();
    if (!mod->as<torch::nn::Conv2dImpl>() && !mod->as<torch::nn::ConvTranspose2dImpl>() && !mod->as<torch::nn::LinearImpl>())
      continue;
    const auto params = mod->named_parameters(/*recurse=*/false);  // find() points into it
    if (const auto* w = params.find("weight")) out.emplace_back(item.key().empty() ? "weight" : item.key() + ".weight", *w);
  }
  return out;
}

PruneScope prune_scope_from_string(const std::string& s) {
  if (s == "global") return PruneScope::Global;
  if (s == "layer") return PruneScope::Layer;
  throw Error("--prune-scope '" + s + "': expected global or layer");
}

const char* prune_scope_name(PruneScope s) { return s == PruneScope::Global ? "global" : "layer"; }

void check_sparsity(double p, const std::string& what) {
  if (!(std::isfinite(p) && p >= 0 && p < 1)) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", p);
    throw Error(what + ": sparsity must be in [0, 1), got " + buf);
  }
}

int64_t prune_count(double p, int64_t n) { return std::llround(p * static_cast<double>(n)); }

PruneSpec parse_prune_spec(const std::string& text) {
  const auto colon = text.find(':');
  require(colon != std::string::npos, "--prune '" + text + "': expected METHOD:SPARSITY, e.g. magnitude:0.5");
  PruneSpec spec;
  spec.method = text.substr(0, colon);
  const std::string number = text.substr(colon + 1);
  require(spec.method == "magnitude" || spec.method == "structured",
          "--prune '" + text + "': unknown method '" + spec.method + "' (magnitude, structured)");
  try {
    size_t used = 0;
    spec.sparsity = std::stod(number, &used);
    require(used == number.size(), "");
  } catch (const std::exception&) {
    throw Error("--prune '" + text + "': '" + number + "' is not a number");
  }
  check_sparsity(spec.sparsity, "--prune " + text);
  return spec;
}

PruneResult magnitude_masks(const torch::nn::Module& m, const PruneOptions& o) {
  check_sparsity(o.sparsity, "pruning");
  PruneResult r;
  const auto selected = select_weights(m, o, r);
  for (const auto& s : selected) {
    r.selected += s.weight.numel();
    require(torch::isfinite(s.weight).all().item<bool>(), "pruning: weight '" + s.name + "' has non-finite values");
  }
  auto add = [&](const Selected& s, torch::Tensor mask, double theta) {
    const int64_t zeros = mask.numel() - mask.sum().item<int64_t>();
    r.pruned += zeros;
    r.masks.push_back({s.name, std::move(mask), zeros, theta});
  };
  if (o.scope == PruneScope::Global) {
    std::vector<torch::Tensor> ws;
    for (const auto& s : selected) ws.push_back(s.weight);
    const auto masks = smallest_k_masks(ws, prune_count(o.sparsity, r.selected), r.threshold);
    for (size_t i = 0; i < selected.size(); ++i) add(selected[i], masks[i], r.threshold);
  } else {
    for (const auto& s : selected) {
      double theta = 0;
      auto mask = smallest_k_masks({s.weight}, prune_count(o.sparsity, s.weight.numel()), theta)[0];
      add(s, std::move(mask), theta);
    }
  }
  return r;
}

void apply_masks(torch::nn::Module& m, const std::vector<WeightMask>& masks) {
  torch::NoGradGuard no_grad;
  auto params = m.named_parameters(true);
  for (const auto& wm : masks) {
    auto* p = params.find(wm.name);
    require(p != nullptr, "pruning mask for '" + wm.name + "': the model has no such parameter");
    require(p->sizes().equals(wm.mask.sizes()), "pruning mask for '" + wm.name + "': shape does not match the weight");
    p->masked_fill_(wm.mask.logical_not(), 0.0);
  }
}

PruneResult magnitude_prune(torch::nn::Module& m, const PruneOptions& o) {
  PruneResult r = magnitude_masks(m, o);
  apply_masks(m, r.masks);
  return r;
}

}  // namespace leanseg
