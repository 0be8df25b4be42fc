#include <cstdio>
#include <sstream>

#include "leanseg/error.h"
#include "leanseg/info.h"

namespace leanseg {

ModelSummary summarize(SegmentationModel model, int64_t height, int64_t width) {
  ModelSummary s;
  const auto& cfg = model->config();
  s.arch = cfg.arch;
  s.in_channels = cfg.in_channels;
  s.input_height = static_cast<int>(height);
  s.input_width = static_cast<int>(width);
  const bool was_training = model->is_training();
  model->eval();
  std::vector<StageRecord> records;
  {
    torch::NoGradGuard no_grad;
    model->forward_recorded(torch::zeros({1, cfg.in_channels, height, width}), records);
  }
  model->train(was_training);

  const auto defs = model->stages();
  std::vector<bool> covered;
  const auto params = model->named_parameters(true);
  covered.assign(params.size(), false);
  for (const auto& rec : records) {
    StageSummary st{rec.name, rec.shape, 0, 0, rec.flops};
    for (const auto& def : defs) {
      if (def.name != rec.name) continue;
      for (size_t i = 0; i < params.size(); ++i) {
        const auto& key = params[i].key();
        for (const auto& prefix : def.param_prefixes)
          if (key.rfind(prefix, 0) == 0) {
            (params[i].value().requires_grad() ? st.params_trainable : st.params_frozen) += params[i].value().numel();
            covered[i] = true;
            break;
          }
      }
    }
    s.flops += st.flops;
    s.stages.push_back(std::move(st));
  }
  for (size_t i = 0; i < params.size(); ++i)
    require(covered[i], s.arch + ": parameter '" + params[i].key() + "' belongs to no stage");
  const ParamCounts c = count_params(*model);
  s.params_total = c.total;
  s.params_trainable = c.trainable;
  s.params_frozen = c.frozen;
  s.params_nonzero = c.nonzero;
  for (const auto& b : model->named_buffers(true))
    if (b.value().is_floating_point()) s.fp32_bytes += b.value().numel() * 4;
  s.fp32_bytes += c.total * 4;
  return s;
}

nlohmann::json ModelSummary::to_json() const {
  nlohmann::json st = nlohmann::json::array();
  for (const auto& x : stages)
    st.push_back({{"name", x.name}, {"shape", x.shape}, {"params_trainable", x.params_trainable},
                  {"params_frozen", x.params_frozen}, {"flops", x.flops}});
  return {{"model", arch}, {"in_channels", in_channels}, {"input_size", {input_height, input_width}},
          {"stages", st}, {"params_total", params_total}, {"params_trainable", params_trainable},
          {"params_frozen", params_frozen}, {"params_nonzero", params_nonzero}, {"flops", flops},
          {"fp32_bytes", fp32_bytes}};
}

std::string ModelSummary::to_table() const {
  std::ostringstream o;
  char line[256];
  o << arch << "  (input " << in_channels << "x" << input_height << "x" << input_width << ")\n";
  std::snprintf(line, sizeof line, "%-11s %-20s %12s %12s %10s\n", "stage", "output (CxHxW)", "trainable", "frozen", "GFLOPs");
  o << line;
  for (const auto& s : stages) {
    std::string shape;
    for (size_t i = 1; i < s.shape.size(); ++i) shape += (i > 1 ? "x" : "") + std::to_string(s.shape[i]);
    std::snprintf(line, sizeof line, "%-11s %-20s %12lld %12lld %10.3f\n", s.name.c_str(), shape.c_str(),
                  static_cast<long long>(s.params_trainable), static_cast<long long>(s.params_frozen), s.flops / 1e9);
    o << line;
  }
  std::snprintf(line, sizeof line, "params_total %lld  params_trainable %lld  flops %.3f GFLOPs  fp32 %.2f MB\n",
                static_cast<long long>(params_total), static_cast<long long>(params_trainable), flops / 1e9,
                fp32_bytes / 1e6);
  o << line;
  return o.str();
}

}  // namespace leanseg
