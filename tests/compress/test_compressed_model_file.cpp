// Compact weight storage in model files: every kind round-trips to exactly the (de)quantized
// weights, file sizes shrink as promised, plain files are unchanged, bad entries fail clearly.
#include <cstdio>
#include <filesystem>

#include "compress/weight_storage.h"
#include "leanseg/compress.h"
#include "leanseg/error.h"
#include "leanseg/model_file.h"
#include "leanseg/safetensors.h"
#include "leanseg/tensor_io.h"
#include "compress_test_util.h"

namespace leanseg {
namespace {

int64_t file_size(const std::string& path) { return static_cast<int64_t>(std::filesystem::file_size(path)); }

// What load_model must return for weight `w` stored as `st`.
torch::Tensor expected_weight(const torch::Tensor& w, const WeightStorage& st) {
  if (st.kind == "f16") return w.to(torch::kFloat16).to(torch::kFloat32);
  if (st.kind == "bf16") return w.to(torch::kBFloat16).to(torch::kFloat32);
  if (st.kind.rfind("affine", 0) == 0)
    return affine_dequantize(affine_quantize(w, std::stoi(st.kind.substr(6)), st.per_channel));
  return w;  // f32, sparse: lossless
}

// Compares every tensor of `loaded` with `original`: compressible weights against their expected
// stored values, everything else exactly.
void expect_weights(const torch::nn::Module& original, const torch::nn::Module& loaded, const WeightStorage& st) {
  std::set<std::string> compressible;
  for (const auto& nw : compressible_weights(original)) compressible.insert(nw.first);
  const auto a = state_dict(original), b = state_dict(loaded);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].first, b[i].first);
    const auto want = compressible.count(a[i].first) ? expected_weight(a[i].second.detach(), st) : a[i].second;
    EXPECT_TRUE(torch::equal(b[i].second, want)) << st.kind << ": " << a[i].first;
  }
}

// The size table of docs/compression.md comes from this test (unet-32, random He-normal weights).
TEST(CompressedModelFile, EveryStorageKindRoundTripsExactlyAndShrinksTheFile) {
  test::TempDir dir;
  auto model = test::random_model("unet-32");
  Preprocessing pre;
  const auto dense = dir.file("f32.safetensors");
  save_model(dense, model, pre);
  const double f32_bytes = static_cast<double>(file_size(dense));
  std::printf("%-22s %12s %8s\n", "storage", "bytes", "ratio");
  std::printf("%-22s %12.0f %8.4f\n", "f32", f32_bytes, 1.0);
  struct Case {
    WeightStorage st;
    double max_ratio, min_ratio;
  };
  const std::vector<Case> cases = {
      {{"f16", false}, 0.51, 0.49},     {{"bf16", false}, 0.51, 0.49},    {{"affine8", false}, 0.26, 0.24},
      {{"affine8", true}, 0.26, 0.24},  {{"affine4", false}, 1.0 / 7, 0}, {{"affine4", true}, 1.0 / 7, 0},
      {{"affine2", false}, 1.0 / 12, 0}, {{"affine2", true}, 1.0 / 12, 0},
  };
  for (const auto& c : cases) {
    const std::string label = c.st.kind + (c.st.per_channel ? " per-channel" : "");
    SCOPED_TRACE(label);
    const auto path = dir.file(c.st.kind + (c.st.per_channel ? "_pc" : "") + ".safetensors");
    save_model(path, model, pre, nlohmann::json::object(), c.st);
    const double ratio = file_size(path) / f32_bytes;
    std::printf("%-22s %12lld %8.4f\n", label.c_str(), static_cast<long long>(file_size(path)), ratio);
    EXPECT_LE(ratio, c.max_ratio);
    EXPECT_GE(ratio, c.min_ratio);
    LoadedModel loaded = load_model(path);
    EXPECT_EQ(loaded.storage["kind"], c.st.kind);
    expect_weights(*model, *loaded.model, c.st);
    torch::NoGradGuard ng;
    const auto y = loaded.model->forward(torch::randn({1, 1, 64, 64}));
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{1, 1, 64, 64}));
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  }

  // 90% magnitude pruning stored sparse (values + 1-bit mask).
  for (const char* scope : {"global", "layer"}) {
    auto pruned = test::random_model("unet-32");
    magnitude_prune(*pruned, {0.9, prune_scope_from_string(scope), {}, false});
    const auto path = dir.file(std::string("sparse_") + scope + ".safetensors");
    const WeightStorage sparse{"sparse", false};
    save_model(path, pruned, pre, nlohmann::json::object(), sparse);
    const double ratio = file_size(path) / f32_bytes;
    std::printf("%-22s %12lld %8.4f\n", (std::string("sparse 90% ") + scope).c_str(), static_cast<long long>(file_size(path)), ratio);
    EXPECT_LT(ratio, 0.2);
    expect_weights(*pruned, *load_model(path).model, sparse);
  }

  // Pruned and quantized: only the non-zero codes plus a 1-bit mask (bits per weight:
  // 1 + (1 − p)·B against B), decoded to exactly the full tensor's (de)quantized values.
  struct PrunedCase {
    double sparsity;
    WeightStorage st;
    double max_ratio;
  };
  for (const PrunedCase& c : std::vector<PrunedCase>{{0.5, {"affine8", true}, 0.165},
                                                     {0.9, {"affine8", true}, 0.06},
                                                     {0.9, {"affine4", true}, 0.047}}) {
    auto pruned = test::random_model("unet-32");
    magnitude_prune(*pruned, {c.sparsity, PruneScope::Global, {}, false});
    const std::string label = "pruned " + std::to_string(static_cast<int>(c.sparsity * 100)) + "% " + c.st.kind;
    SCOPED_TRACE(label);
    const auto path = dir.file(label + ".safetensors");
    save_model(path, pruned, pre, nlohmann::json::object(), c.st);
    const double ratio = file_size(path) / f32_bytes;
    std::printf("%-22s %12lld %8.4f\n", label.c_str(), static_cast<long long>(file_size(path)), ratio);
    EXPECT_LT(ratio, c.max_ratio);
    const LoadedModel loaded = load_model(path);
    EXPECT_TRUE(loaded.storage["tensors"].begin()->contains("nnz"));
    expect_weights(*pruned, *loaded.model, c.st);
  }
}

TEST(CompressedModelFile, PrunedZerosSurviveQuantization) {
  test::TempDir dir;
  auto model = test::tiny_efficient_unet();
  const PruneResult r = magnitude_prune(*model, {0.5, PruneScope::Global, {}, false});
  for (const char* kind : {"f16", "bf16", "affine8", "affine4", "affine2"}) {
    const auto path = dir.file(std::string(kind) + ".safetensors");
    save_model(path, model, Preprocessing{}, nlohmann::json::object(), {kind, std::string(kind).rfind("affine", 0) == 0});
    const LoadedModel loaded = load_model(path);
    auto params = loaded.model->named_parameters(true);
    for (const auto& wm : r.masks)
      EXPECT_EQ(params[wm.name].masked_select(~wm.mask).count_nonzero().item<int64_t>(), 0) << kind << " " << wm.name;
  }
}

TEST(CompressedModelFile, PlainFilesStayVersionOneAndSparseFallsBackToDense) {
  test::TempDir dir;
  auto model = test::tiny_efficient_unet();
  save_model(dir.file("plain.safetensors"), model, Preprocessing{});
  auto meta = nlohmann::json::parse(SafeTensorsFile::open(dir.file("plain.safetensors")).metadata().at("leanseg"));
  EXPECT_EQ(meta["format_version"], 1);
  EXPECT_FALSE(meta.contains("storage"));
  EXPECT_TRUE(load_model(dir.file("plain.safetensors")).storage.is_null());
  // Dense weights are not worth a mask: "sparse" then writes exactly the plain file's tensors.
  save_model(dir.file("sparse.safetensors"), model, Preprocessing{}, nlohmann::json::object(), {"sparse", false});
  meta = nlohmann::json::parse(SafeTensorsFile::open(dir.file("sparse.safetensors")).metadata().at("leanseg"));
  EXPECT_EQ(meta["format_version"], 1);
  EXPECT_EQ(file_size(dir.file("sparse.safetensors")), file_size(dir.file("plain.safetensors")));
  // Compact files are version 2.
  save_model(dir.file("q.safetensors"), model, Preprocessing{}, nlohmann::json::object(), {"affine4", true});
  meta = nlohmann::json::parse(SafeTensorsFile::open(dir.file("q.safetensors")).metadata().at("leanseg"));
  EXPECT_EQ(meta["format_version"], 2);
  EXPECT_EQ(meta["storage"]["kind"], "affine4");
}

// Rewrites a model file keeping only the tensors `keep` accepts and editing the metadata.
void rewrite(const std::string& from, const std::string& to, const std::function<bool(const std::string&)>& keep,
             const std::function<void(nlohmann::json&)>& edit) {
  const auto f = SafeTensorsFile::open(from);
  auto meta = f.metadata();
  auto j = nlohmann::json::parse(meta.at("leanseg"));
  edit(j);
  meta["leanseg"] = j.dump();
  std::vector<TensorToWrite> tensors;
  for (const auto& t : f.tensors())
    if (keep(t.name)) tensors.push_back({t.name, t.dtype, t.shape, f.data(t), t.nbytes()});
  write_safetensors(to, tensors, meta);
}

TEST(CompressedModelFile, BadCompactEntriesFailWithClearMessages) {
  test::TempDir dir;
  auto model = test::tiny_efficient_unet();
  const auto good = dir.file("good.safetensors");
  save_model(good, model, Preprocessing{}, nlohmann::json::object(), {"affine4", true});
  const std::string weight = compressible_weights(*model).front().first;
  const auto all = [](const std::string&) { return true; };
  const auto same = [](nlohmann::json&) {};

  const auto missing = dir.file("missing.safetensors");
  rewrite(good, missing, [&](const std::string& n) { return n != weight + ".q_scale"; }, same);
  EXPECT_ERROR_CONTAINS(load_model(missing), "is missing tensor '" + weight + ".q_scale'");

  const auto kind = dir.file("kind.safetensors");
  rewrite(good, kind, all, [&](nlohmann::json& j) { j["storage"]["tensors"][weight]["kind"] = "affine3"; });
  EXPECT_ERROR_CONTAINS(load_model(kind), "tensor '" + weight + "': unknown storage kind 'affine3'");

  const auto bits = dir.file("bits.safetensors");  // 4-bit codes read as 2-bit: wrong byte count
  rewrite(good, bits, all, [&](nlohmann::json& j) { j["storage"]["tensors"][weight]["kind"] = "affine2"; });
  EXPECT_ERROR_CONTAINS(load_model(bits), "tensor '" + weight + ".q_codes' has shape");

  const auto stray = dir.file("stray.safetensors");
  rewrite(good, stray, all, [&](nlohmann::json& j) { j["storage"]["tensors"]["head.extra.weight"] = {{"kind", "f16"}}; });
  EXPECT_ERROR_CONTAINS(load_model(stray), "storage lists tensor 'head.extra.weight' that does not belong to this model");

  // Pruned + quantized entries: the mask must agree with the stored count.
  auto pruned = test::tiny_efficient_unet();
  magnitude_prune(*pruned, {0.7, PruneScope::Global, {}, false});
  const auto sparse_q = dir.file("sparse_q.safetensors");
  save_model(sparse_q, pruned, Preprocessing{}, nlohmann::json::object(), {"affine8", true});
  const auto entries = nlohmann::json::parse(SafeTensorsFile::open(sparse_q).metadata().at("leanseg"))["storage"]["tensors"];
  const std::string pruned_weight = entries.begin().key();
  ASSERT_TRUE(entries.begin()->contains("nnz"));
  const auto count = dir.file("count.safetensors");
  rewrite(sparse_q, count, all, [&](nlohmann::json& j) { j["storage"]["tensors"][pruned_weight]["nnz"] = 3; });
  EXPECT_ERROR_CONTAINS(load_model(count), "tensor '" + pruned_weight + "': storage says 3 non-zero codes, the mask has");

  const auto plain = dir.file("plain.safetensors");  // the storage entry dropped: leftovers are named
  rewrite(good, plain, all, [&](nlohmann::json& j) { j.erase("storage"); });
  EXPECT_ERROR_CONTAINS(load_model(plain), "that the model needs");
}

}  // namespace
}  // namespace leanseg
