// One line describing a model file's compression, from its provenance (extra.compression,
// extra.train_options) and its compact storage.
#include <cmath>
#include <cstdio>

#include "leanseg/compress.h"

namespace leanseg {
namespace {

std::string percent(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g%%", std::round(p * 1000) / 10);
  return buf;
}

// How the file's model was trained, where it says something beyond plain training.
std::string describe_training(const LoadedModel& m) {
  if (!m.extra.is_object() || !m.extra.contains("train_options")) return "";
  const nlohmann::json& t = m.extra["train_options"];
  if (t.contains("distillation") && t["distillation"].is_object()) {
    const nlohmann::json& d = t["distillation"];
    char buf[96];
    std::snprintf(buf, sizeof buf, "distilled (T=%g, alpha=%g)", d.value("temperature", 0.0), d.value("alpha", 0.0));
    return buf;
  }
  return "";
}

std::string describe_step(const nlohmann::json& s) {
  const std::string step = s.value("step", "");
  if (step == "prune" && s.value("method", "") == "structured")
    return "structured pruning " + percent(s.value("sparsity", 0.0)) + " (" + std::to_string(s.value("channels_removed", 0)) +
           " of " + std::to_string(s.value("channels", 0)) + " channels removed)";
  if (step == "prune")
    return s.value("method", "magnitude") + " pruning " + percent(s.value("sparsity", 0.0)) + " (" +
           s.value("scope", "global") + (s.value("frozen_included", false) ? ", frozen weights included" : "") + ")";
  if (step == "finetune") {
    const int e = s.value("epochs", 0);
    std::string text = (s.value("qat_bits", 0) ? "quantization-aware fine-tune " : "fine-tune ") + std::to_string(e) +
                       (e == 1 ? " epoch" : " epochs");
    if (s.contains("teacher")) text += " (distilled)";
    return text;
  }
  if (step == "quantize")
    return s.value("quant", "?") + (s.value("per_channel", false) ? " per channel" : "") +
           (s.value("bits", 0) ? " (" + s.value("method", "affine") + ")" : "");
  return step;
}

}  // namespace

std::string describe_compression(const LoadedModel& m) {
  std::string text = describe_training(m);
  if (m.extra.is_object() && m.extra.contains("compression") && m.extra["compression"].is_object()) {
    for (const auto& s : m.extra["compression"].value("steps", nlohmann::json::array()))
      text += (text.empty() ? "" : " → ") + describe_step(s);
  }
  if (m.storage.is_object()) {
    const size_t n = m.storage.value("tensors", nlohmann::json::object()).size();
    text += (text.empty() ? "" : "; ") + std::string("weights stored as ") + m.storage.value("kind", "?") +
            (m.storage.value("per_channel", false) ? " per channel" : "") + " (" + std::to_string(n) + " tensors)";
  }
  return text;
}

}  // namespace leanseg
