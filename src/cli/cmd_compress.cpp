// `leanseg compress --model FILE --out FILE [--prune magnitude:P|structured:P] [--prune-scope global|layer]
//  [--prune-layers PREFIX,...] [--prune-frozen] [--quant fp16|bf16|int8|int4|int2] [--per-channel]
//  [--finetune-epochs N --data DIR [--dataset KIND]]`: prune → fine-tune → quantize → write
// (atomically), then reload the written file and print what changed (see docs/compression.md).
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli_common.h"
#include "commands.h"
#include "compress/prune.h"
#include "compress/quantize.h"
#include "leanseg/compress.h"
#include "leanseg/finetune.h"
#include "leanseg/error.h"

namespace leanseg::cli {
namespace {
namespace fs = std::filesystem;

struct CompressArgs {
  std::string model, out, prune, prune_scope, prune_layers, quant, data, dataset = "auto", finetune_dir;
  bool prune_frozen = false, per_channel = false, json = false, no_progress = false;
  int qat_bits = 0;
  DistillArgs distill;
  int finetune_epochs = 0, batch_size = 0;
  double lr = 0;
};

// Everything decided from the options alone, checked before any file is read.
struct Plan {
  bool prune = false, structured = false;
  PruneOptions prune_options;
  StructuredPruneOptions structured_options;
  WeightStorage storage;  // f32 (or sparse after pruning) unless --quant
  int seed_bits = 0;      // --quant seedB: the seed's uniform formula on the weights
};

Plan make_plan(const CompressArgs& a) {
  Plan p;
  if (!a.prune.empty()) {
    const PruneSpec spec = parse_prune_spec(a.prune);
    p.prune = true;
    p.structured = spec.method == "structured";
    p.structured_options = {spec.sparsity, a.prune_frozen};
    require_usage(!p.structured || (a.prune_scope.empty() && a.prune_layers.empty()),
                  "--prune-scope and --prune-layers apply to magnitude pruning; structured:P prunes every channel group");
    p.prune_options.sparsity = spec.sparsity;
    p.prune_options.scope = prune_scope_from_string(a.prune_scope.empty() ? "global" : a.prune_scope);
    p.prune_options.layers = split_channels(a.prune_layers);  // any comma-separated list
    p.prune_options.allow_frozen = a.prune_frozen;
  } else {
    require_usage(a.prune_scope.empty() && a.prune_layers.empty() && !a.prune_frozen,
                  "--prune-scope, --prune-layers and --prune-frozen need --prune magnitude:P or structured:P");
  }
  p.seed_bits = seed_quant_bits(a.quant);
  if (p.seed_bits) {
    // The seed's grid has no scale to store: the snapped weights stay fp32 values, and the many
    // that snap to 0 are stored as a bit mask where that is smaller (sparse).
    require_usage(!a.per_channel, "--per-channel applies to --quant int8, int4 or int2; the seed's formula has no scale");
    p.storage.kind = "sparse";
  } else if (!a.quant.empty()) {
    p.storage = storage_for_quant(a.quant, a.per_channel);
  } else {
    require_usage(!a.per_channel, "--per-channel needs --quant int8, int4 or int2");
    // Pruned weights are stored as values + bit mask (only where that is smaller); structured
    // pruning leaves a smaller dense model.
    if (p.prune && !p.structured) p.storage.kind = "sparse";
  }
  require_usage(a.finetune_epochs == 0 || !a.data.empty(), "--finetune-epochs needs --data DIR (the images to fine-tune on)");
  require_usage(a.data.empty() || a.finetune_epochs > 0, "--data is only used for fine-tuning: add --finetune-epochs N");
  require_usage(a.qat_bits == 0 || (storage_bits(p.storage.kind) == a.qat_bits && a.finetune_epochs > 0),
                "--qat " + std::to_string(a.qat_bits) + " fine-tunes with the weights quantized as --quant says: it needs "
                "--quant int" + std::to_string(a.qat_bits) + " and --finetune-epochs N");
  require_usage(a.distill.teacher.empty() || a.finetune_epochs > 0, "--distill TEACHER needs --finetune-epochs N and --data DIR");
  require_usage(a.finetune_epochs > 0 || (a.lr == 0 && a.batch_size == 0 && a.finetune_dir.empty()),
                "--lr, --batch-size and --finetune-dir need --finetune-epochs N");
  require_usage(p.prune || !a.quant.empty() || a.finetune_epochs > 0,
                "compress: nothing to do; give --prune, --quant and/or --finetune-epochs");
  return p;
}

nlohmann::json prune_step(const PruneOptions& o, const PruneResult& r) {
  nlohmann::json s = {{"step", "prune"}, {"method", "magnitude"}, {"sparsity", o.sparsity},
                      {"scope", prune_scope_name(o.scope)}, {"frozen_included", o.allow_frozen},
                      {"pruned", r.pruned}, {"selected", r.selected}};
  if (!o.layers.empty()) s["layers"] = o.layers;
  if (o.scope == PruneScope::Global) s["threshold"] = r.threshold;
  return s;
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

void run_compress(const CompressArgs& a) {
  const Plan plan = cli_conventions::as_usage_error([&] { return make_plan(a); });  // options only
  LoadedModel m = load_model(a.model);
  const ParamCounts before = count_params(*m.model);
  const auto bytes_before = static_cast<int64_t>(fs::file_size(a.model));
  nlohmann::json steps = nlohmann::json::array();

  std::vector<WeightMask> masks;
  if (plan.structured) {
    const StructuredPlan sp = structured_plan(*m.model, plan.structured_options);
    apply_structured(*m.model, sp);
    steps.push_back(nlohmann::json{{"step", "prune"}, {"method", "structured"}, {"sparsity", plan.structured_options.ratio},
                                   {"groups", sp.groups.size()}, {"channels", sp.channels},
                                   {"channels_removed", sp.removed_channels},
                                   {"frozen_included", plan.structured_options.allow_frozen}});
    std::cerr << "removed " << sp.removed_channels << " of " << sp.channels << " channels in " << sp.groups.size()
              << " channel groups\n";
    if (!sp.skipped_frozen.empty())
      std::cerr << "note: " << sp.skipped_frozen.size() << " channel groups touch frozen weights and were kept\n";
  } else if (plan.prune) {
    const PruneResult r = magnitude_prune(*m.model, plan.prune_options);
    masks = r.masks;
    steps.push_back(prune_step(plan.prune_options, r));
    std::cerr << "pruned " << with_commas(r.pruned) << " of " << with_commas(r.selected) << " weights in "
              << r.masks.size() << " tensors\n";
    if (!r.skipped_frozen.empty())
      std::cerr << "note: " << r.skipped_frozen.size()
                << " frozen encoder weight tensors left dense (--prune-frozen prunes them too)\n";
  }
  if (a.finetune_epochs > 0) {
    const Dataset data = load_dataset(a.data, a.dataset, m.preprocessing.channels, m.model->config().num_classes);
    TrainOptions o = finetune_options(m, a.finetune_epochs);
    if (a.lr > 0) o.lr = a.lr;
    if (a.batch_size > 0) o.batch_size = a.batch_size;
    o.out_dir = a.finetune_dir.empty() ? a.out + ".finetune" : a.finetune_dir;
    o.progress = !a.no_progress;
    if (a.qat_bits) o.qat_bits = a.qat_bits, o.qat_per_channel = plan.storage.per_channel;
    apply_distill(a.distill, o);
    std::cerr << "fine-tuning " << a.finetune_epochs << " epochs on " << data.kind << " (" << data.samples.size()
              << " images), lr " << o.lr << "; run files in " << o.out_dir << "\n";
    FinetuneResult f = finetune(m, data, o, masks);
    m = std::move(f.model);
    nlohmann::json step = {{"step", "finetune"}, {"epochs", a.finetune_epochs}, {"lr", o.lr},
                                   {"dataset", data.kind}, {"images", data.samples.size()},
                                   {"best_val_dice", f.run.best_val_dice}, {"best_epoch", f.run.best_epoch},
                                   {"run_dir", o.out_dir}};
    if (o.qat_bits) step["qat_bits"] = o.qat_bits;
    if (!o.teacher.empty()) step["teacher"] = o.teacher, step["distill_alpha"] = o.distill_alpha,
                            step["distill_temperature"] = o.distill_temperature;
    steps.push_back(step);
  }
  if (plan.seed_bits) {
    torch::NoGradGuard no_grad;
    int64_t zero = 0, total = 0;
    for (auto& [name, w] : compressible_weights(*m.model)) {
      w.copy_(seed_uniform_quantize(w, plan.seed_bits));
      zero += (w == 0).sum().item<int64_t>(), total += w.numel();
    }
    steps.push_back(nlohmann::json{{"step", "quantize"}, {"quant", a.quant}, {"storage", plan.storage.kind},
                                   {"bits", plan.seed_bits}, {"method", "seed-uniform"}, {"zero_after", zero},
                                   {"weights", total}});
    std::cerr << "seed uniform " << plan.seed_bits << "-bit grid (step 1/" << ((1 << plan.seed_bits) - 1) << "): "
              << with_commas(zero) << " of " << with_commas(total) << " weights are 0 after it\n";
  } else if (!a.quant.empty()) {
    nlohmann::json s = {{"step", "quantize"}, {"quant", a.quant}, {"storage", plan.storage.kind}};
    if (const int bits = storage_bits(plan.storage.kind)) {
      s["bits"] = bits;
      s["per_channel"] = plan.storage.per_channel;
      s["method"] = "affine";
    }
    steps.push_back(s);
  }

  nlohmann::json extra = m.extra.is_object() ? m.extra : nlohmann::json::object();
  nlohmann::json& compression = extra["compression"];
  if (!compression.is_object()) compression = nlohmann::json::object();
  if (!compression.contains("steps") || !compression["steps"].is_array()) compression["steps"] = nlohmann::json::array();
  for (const auto& s : steps) compression["steps"].push_back(s);  // a recompressed file keeps its history
  compression["source"] = fs::path(a.model).filename().string();
  save_model(a.out, m.model, m.preprocessing, extra, plan.storage);

  // Report what the written file really holds.
  const LoadedModel out = load_model(a.out);
  const ParamCounts after = count_params(*out.model);
  const auto bytes_after = static_cast<int64_t>(fs::file_size(a.out));
  const double ratio = static_cast<double>(bytes_before) / static_cast<double>(std::max<int64_t>(1, bytes_after));
  if (a.json) {
    std::cout << nlohmann::json{{"model", a.model}, {"out", a.out}, {"arch", out.model->config().arch},
                                {"params_total", after.total}, {"params_nonzero_before", before.nonzero},
                                {"params_nonzero_after", after.nonzero}, {"file_bytes_before", bytes_before},
                                {"file_bytes_after", bytes_after}, {"ratio", ratio}, {"steps", steps},
                                {"storage", out.storage}}
                     .dump(2)
              << "\n";
    return;
  }
  std::printf("compressed %s (%s) -> %s\n", a.model.c_str(), out.model->config().arch.c_str(), a.out.c_str());
  std::printf("  %s\n", describe_compression(out).c_str());
  std::printf("  params     %s -> %s (non-zero %s -> %s)\n", with_commas(before.total).c_str(), with_commas(after.total).c_str(),
              with_commas(before.nonzero).c_str(), with_commas(after.nonzero).c_str());
  std::printf("  file size  %.2f MB -> %.2f MB (%.2fx smaller)\n", bytes_before / 1e6, bytes_after / 1e6, ratio);
  if (plan.structured)
    std::printf("  (channels were removed: the dense model is smaller and computes less; see leanseg info)\n");
  else
    std::printf("  (LibTorch computes with the dequantized fp32 weights: smaller file, same speed)\n");
}

}  // namespace

void add_compress(CLI::App& app) {
  auto a = std::make_shared<CompressArgs>();
  auto* cmd = app.add_subcommand("compress", "Prune, fine-tune and quantize a model file (prune -> fine-tune -> quantize)");
  add_model_option(cmd, a->model, ModelArg::File)->required();
  cli_conventions::add_out_option(*cmd, a->out, "Compressed model file to write")->required();
  cmd->add_option("--prune", a->prune, "magnitude:P (zero the share P of the smallest weights) or structured:P (remove the share P of each channel group), P in [0, 1)");
  cmd->add_option("--prune-scope", a->prune_scope, "global (one threshold, default) or layer (one per weight tensor)");
  cmd->add_option("--prune-layers", a->prune_layers,
                  "Comma-separated parameter-name prefixes to prune (default: every trainable conv/linear weight)");
  cmd->add_flag("--prune-frozen", a->prune_frozen, "Also prune frozen (encoder) weights");
  cmd->add_option("--quant", a->quant,
                  "Weight storage: fp16, bf16, int8, int4 or int2 (integer affine), or seed8, seed4, seed2 (the framework "
                  "seed's X_q = round(X(2^b-1))/(2^b-1), no scale: small weights become 0)");
  cmd->add_flag("--per-channel", a->per_channel, "int8/4/2: one scale and zero point per output channel");
  cmd->add_option("--finetune-epochs", a->finetune_epochs, "Fine-tune for N epochs after pruning (needs --data)")
      ->check(CLI::PositiveNumber);
  add_dataset_options(cmd, a->data, a->dataset, "to fine-tune on");
  cmd->add_option("--finetune-dir", a->finetune_dir, "Run folder of the fine-tuning (default: OUT.finetune)");
  cmd->add_option("--lr", a->lr, "Fine-tuning learning rate (default 1e-4)")->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", a->batch_size, "Fine-tuning batch size (default: the model's recipe)")->check(CLI::PositiveNumber);
  add_qat_option(cmd, a->qat_bits, "Quantization-aware fine-tuning at BITS, the bit-width of --quant int<BITS>");
  add_distill_options(cmd, a->distill);
  cmd->add_flag("--json", a->json, "Print the summary as JSON");
  cmd->add_flag("--no-progress", a->no_progress, "No progress bar while fine-tuning");
  cmd->callback([a] { run_compress(*a); });
}

}  // namespace leanseg::cli
