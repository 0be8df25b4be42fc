// Fine-tuning after pruning (C6) and the `leanseg compress` command end to end: prune →
// fine-tune → quantize, the result reloads through `leanseg eval`/`info`, bad options fail.
#include <filesystem>

#include "compress_test_util.h"
#include "leanseg/compress.h"
#include "leanseg/finetune.h"
#include "leanseg/model_file.h"
#include "leanseg/train.h"

namespace leanseg {
namespace {

using test::CliRun;
CliRun run_cli(const std::string& args) { return test::run_cli(args, 2); }

nlohmann::json json_of(const CliRun& r) { return nlohmann::json::parse(r.out.substr(r.out.find('{'))); }

TEST(Compress, FinetuneOptionsComeFromTheModelsRecipe) {
  LoadedModel m;
  m.model = test::tiny_efficient_unet();
  m.preprocessing.input_height = m.preprocessing.input_width = 90;  // no recipe: from preprocessing
  TrainOptions o = finetune_options(m, 2);
  EXPECT_EQ(o.input_size, 96);
  EXPECT_EQ(o.input_mode, "resize");
  EXPECT_DOUBLE_EQ(o.lr, 1e-4);
  EXPECT_EQ(o.epochs, 2);
  m.extra = {{"train_options", {{"input_size", 128}, {"input_mode", "crop"}, {"batch_size", 4}, {"pos_weight", "auto"}, {"seed", 9}}}};
  o = finetune_options(m, 1);
  EXPECT_EQ(o.input_size, 128);
  EXPECT_EQ(o.input_mode, "crop");
  EXPECT_EQ(o.batch_size, 4);
  EXPECT_TRUE(o.pos_weight_auto);
  EXPECT_EQ(o.seed, 9u);
  EXPECT_EQ(o.model, "efficient-unet");
}

TEST(Compress, DescriptionNamesEveryStepAndHowTheModelWasTrained) {
  LoadedModel m;
  m.model = test::tiny_efficient_unet();
  EXPECT_EQ(describe_compression(m), "");
  m.extra = {{"train_options", {{"distillation", {{"teacher", "t.safetensors"}, {"alpha", 0.5}, {"temperature", 2.0}}}}}};
  EXPECT_EQ(describe_compression(m), "distilled (T=2, alpha=0.5)");
  m.extra = {{"compression",
              {{"steps",
                {{{"step", "prune"}, {"method", "magnitude"}, {"sparsity", 0.5}, {"scope", "global"}},
                 {{"step", "finetune"}, {"epochs", 4}, {"qat_bits", 4}, {"teacher", "t.safetensors"}},
                 {{"step", "quantize"}, {"quant", "int4"}, {"per_channel", true}, {"bits", 4}}}}}}};
  EXPECT_EQ(describe_compression(m),
            "magnitude pruning 50% (global) → quantization-aware fine-tune 4 epochs (distilled) → int4 per channel (affine)");
}

TEST(Compress, FinetuneAfterPruningKeepsExactlyThePrunedWeightsAtZero) {
  test::TempDir dir;
  LoadedModel m;
  m.model = test::tiny_efficient_unet();
  m.preprocessing.input_height = m.preprocessing.input_width = 64;
  m.extra = {{"note", "kept"}};
  const PruneResult r = magnitude_prune(*m.model, {0.5, PruneScope::Global, {}, false});
  std::map<std::string, torch::Tensor> before;
  for (const auto& [name, w] : compressible_weights(*m.model)) before[name] = w.detach().clone();

  TrainOptions o = finetune_options(m, 1);
  o.lr = 1e-3;  // large enough that every kept weight visibly moves in one epoch
  o.batch_size = 8;
  o.progress = false;
  o.out_dir = dir.file("ft");
  const FinetuneResult f = finetune(m, test::disc_dataset(16, 64, 1), o, r.masks);
  EXPECT_EQ(f.run.epochs_run, 1);
  EXPECT_EQ(f.model.extra["note"], "kept");
  auto params = f.model.model->named_parameters(true);
  int64_t zeros = 0, kept = 0, moved = 0;
  for (const auto& wm : r.masks) {
    const auto w = params[wm.name];
    EXPECT_EQ(w.masked_select(~wm.mask).count_nonzero().item<int64_t>(), 0) << wm.name;
    zeros += w.numel() - w.count_nonzero().item<int64_t>();
    kept += wm.mask.sum().item<int64_t>();
    moved += (w.masked_select(wm.mask) != before[wm.name].masked_select(wm.mask)).sum().item<int64_t>();
  }
  EXPECT_EQ(zeros, r.pruned);  // exactly the pruned ones: kept weights did not land on 0
  EXPECT_GT(moved, kept * 9 / 10) << "fine-tuning should have changed the kept weights";
}

struct CliFixture {
  test::TempDir dir;
  std::string model, data;
  int64_t compressible = 0;
  CliFixture() {
    data = dir.file("data");
    test::write_disc_folder(data, 6);
    auto m = test::tiny_efficient_unet();
    for (const auto& nw : compressible_weights(*m)) compressible += nw.second.numel();
    Preprocessing pre;
    pre.input_height = pre.input_width = 64;
    model = dir.file("m.safetensors");
    save_model(model, m, pre);
  }
};

TEST(Compress, CliPrunesQuantizesAndTheResultReloadsInEvalAndInfo) {
  CliFixture fx;
  const auto out = fx.dir.file("c.safetensors");
  CliRun r = run_cli("compress --model " + fx.model + " --out " + out + " --prune magnitude:0.5 --quant int8 --per-channel --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = json_of(r);
  EXPECT_EQ(j["file_bytes_after"].get<int64_t>(), static_cast<int64_t>(std::filesystem::file_size(out)));
  // (This tiny model's file is mostly header; the size ratios are tested on unet-32.)
  EXPECT_LT(j["file_bytes_after"].get<double>(), j["file_bytes_before"].get<double>());
  EXPECT_LE(j["params_nonzero_after"].get<int64_t>(), j["params_nonzero_before"].get<int64_t>() - fx.compressible / 2);
  EXPECT_EQ(j["steps"].size(), 2u);

  r = run_cli("eval --model " + out + " --data " + fx.data + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  j = json_of(r);
  EXPECT_EQ(j["n_images"], 6);
  ASSERT_TRUE(j.contains("compression")) << r.out;
  EXPECT_EQ(j["compression"]["steps"][0]["sparsity"], 0.5);
  EXPECT_EQ(j["compression"]["steps"][1]["bits"], 8);

  r = run_cli("info --model " + out + " --input-size 64");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("compression: magnitude pruning 50% (global) → int8 per channel (affine); weights stored as affine8 per channel"),
            std::string::npos)
      << r.out;

  // The deployment path starts from compressed files too (weights dequantized on load).
  r = run_cli("export --model " + out + " --format runtime --out " + fx.dir.file("c.lsr"));
  EXPECT_EQ(r.code, 0) << r.out;

  // Without --quant the pruned weights are stored sparse.
  const auto sparse = fx.dir.file("s.safetensors");
  r = run_cli("compress --model " + fx.model + " --out " + sparse + " --prune magnitude:0.9");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("file size"), std::string::npos) << r.out;
  EXPECT_EQ(load_model(sparse).storage["kind"], "sparse");
}

TEST(Compress, CliPruneFinetuneQuantizeInOneCall) {
  CliFixture fx;
  const auto out = fx.dir.file("c.safetensors");
  CliRun r = run_cli("compress --model " + fx.model + " --out " + out +
                     " --prune magnitude:0.5 --prune-scope layer --finetune-epochs 1 --data " + fx.data +
                     " --batch-size 4 --quant int4 --no-progress --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = json_of(r);
  ASSERT_EQ(j["steps"].size(), 3u);
  EXPECT_EQ(j["steps"][0]["step"], "prune");
  EXPECT_EQ(j["steps"][1]["step"], "finetune");
  EXPECT_EQ(j["steps"][2]["step"], "quantize");
  EXPECT_TRUE(std::filesystem::exists(out + ".finetune/best.safetensors"));
  LoadedModel c = load_model(out);
  for (const auto& [name, w] : compressible_weights(*c.model))  // per layer, zeros survive fine-tuning and int4
    EXPECT_GE(w.numel() - w.count_nonzero().item<int64_t>(), std::llround(0.5 * w.numel())) << name;
  torch::NoGradGuard ng;
  EXPECT_EQ(c.model->forward(torch::randn({1, 1, 64, 64})).sizes(), (std::vector<int64_t>{1, 1, 64, 64}));
}

TEST(Compress, CliStructuredPruneFinetuneQuantize) {
  CliFixture fx;
  const auto out = fx.dir.file("st.safetensors");
  CliRun r = run_cli("compress --model " + fx.model + " --out " + out + " --prune structured:0.5 --finetune-epochs 1 --data " +
                     fx.data + " --batch-size 4 --quant int8 --no-progress --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = json_of(r);
  EXPECT_EQ(j["steps"][0]["method"], "structured");
  EXPECT_GT(j["steps"][0]["channels_removed"].get<int64_t>(), 0);
  LoadedModel c = load_model(out);
  EXPECT_LT(count_params(*c.model).total, count_params(*test::tiny_efficient_unet()).total);
  r = run_cli("info --model " + out + " --input-size 64");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("structured pruning 50%"), std::string::npos) << r.out;
  r = run_cli("eval --model " + out + " --data " + fx.data + " --json");
  EXPECT_EQ(r.code, 0) << r.out;
}

TEST(Compress, CliBadOptionsGetClearErrors) {
  CliFixture fx;
  const auto out = fx.dir.file("never.safetensors");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--quant int3", "--quant int3: unknown bit-width 3 (8, 4, 2)"},
      {"--quant fp8", "--quant 'fp8': unknown value (fp16, bf16, int8, int4, int2, seed8, seed4, seed2)"},
      {"--finetune-epochs 1", "--finetune-epochs needs --data DIR"},
      {"--data " + fx.data + " --quant int8", "--data is only used for fine-tuning"},
      {"--prune magnitude:1.5", "--prune magnitude:1.5: sparsity must be in [0, 1), got 1.5"},
      {"--prune magnitude:1", "sparsity must be in [0, 1), got 1"},
      {"--prune structured:1", "sparsity must be in [0, 1), got 1"},
      {"--prune structured:0.3 --prune-scope layer", "--prune-scope and --prune-layers apply to magnitude pruning"},
      {"--prune pruned:0.3", "unknown method 'pruned' (magnitude, structured)"},
      {"--prune-scope layer --quant int8", "need --prune magnitude:P"},
      {"--per-channel", "--per-channel needs --quant int8, int4 or int2"},
      {"--quant bf16 --per-channel", "--per-channel applies to --quant int8, int4 or int2"},
      {"", "nothing to do"},
  };
  for (const auto& [args, message] : cases) {
    const CliRun r = run_cli("compress --model " + fx.model + " --out " + out + " " + args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out;  // the options alone are wrong: a usage error
    EXPECT_NE(r.out.find(message), std::string::npos) << args << "\n" << r.out;
    EXPECT_FALSE(std::filesystem::exists(out)) << args;
  }
  // A frozen encoder is only pruned when asked for.
  const auto lite = fx.dir.file("lite.safetensors");
  Preprocessing pre;
  save_model(lite, create_model("mobilenet-aspp-se-unet-lite"), pre);
  CliRun r = run_cli("compress --model " + lite + " --out " + out + " --prune magnitude:0.5 --prune-layers encoder.");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("pruning would change the frozen encoder; pass --prune-frozen to allow it"), std::string::npos) << r.out;
  r = run_cli("compress --model " + fx.dir.file("missing.safetensors") + " --out " + out + " --quant int8");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("missing.safetensors"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace leanseg
