#include "leanseg/error.h"
#include "leanseg/fs.h"
#include "leanseg/model_file.h"
#include "leanseg/safetensors.h"
#include "leanseg/tensor_io.h"
#include "test_util.h"

namespace leanseg {
namespace {

// Rewrites the "leanseg" metadata of a model file through `edit`, keeping the tensors.
void edit_metadata(const std::string& path, const std::function<void(nlohmann::json&)>& edit) {
  const auto f = SafeTensorsFile::open(path);
  auto meta = f.metadata();
  auto j = nlohmann::json::parse(meta.at("leanseg"));
  edit(j);
  meta["leanseg"] = j.dump();
  std::vector<TensorToWrite> tensors;
  for (const auto& t : f.tensors()) tensors.push_back({t.name, t.dtype, t.shape, f.data(t), t.nbytes()});
  write_safetensors(path, tensors, meta);
}

TEST(ModelFile, RoundTripRestoresWeightsOutputsAndPreprocessing) {
  torch::manual_seed(4);
  test::TempDir dir;
  for (const auto& name : model_names()) {
    SCOPED_TRACE(name);
    ModelConfig cfg;
    cfg.arch = name;
    cfg.in_channels = 2;
    auto m = create_model(cfg);
    m->eval();
    Preprocessing pre;
    pre.channels = {"w1", "w2"};
    pre.max_value = 4095;
    pre.mode = "tile";
    const auto path = dir.file(name + ".safetensors");
    save_model(path, m, pre, {{"note", "test"}});
    auto loaded = load_model(path);
    EXPECT_EQ(loaded.model->config().to_json(), m->config().to_json());
    EXPECT_EQ(loaded.preprocessing.to_json(), pre.to_json());
    EXPECT_EQ(loaded.extra["note"], "test");
    EXPECT_EQ(loaded.model->frozen_prefixes(), m->frozen_prefixes());
    const auto a = state_dict(*m), b = state_dict(*loaded.model);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].first, b[i].first);
      EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
    }
    torch::NoGradGuard ng;
    auto x = torch::randn({1, 2, 64, 64});
    EXPECT_TRUE(torch::equal(m->forward(x), loaded.model->forward(x)));
  }
}

TEST(ModelFile, BadFilesFailWithClearMessages) {
  test::TempDir dir;
  const auto path = dir.file("m.safetensors");
  save_model(path, create_model("unet-32"), Preprocessing{});

  const auto plain = dir.file("plain.safetensors");
  float x = 1;
  write_safetensors(plain, {{"w", DType::F32, {1}, &x, 4}}, {});
  EXPECT_ERROR_CONTAINS(load_model(plain), "without leanseg metadata");

  const auto future = dir.file("future.safetensors");
  std::filesystem::copy_file(path, future);
  edit_metadata(future, [](nlohmann::json& j) { j["format_version"] = 99; });
  EXPECT_ERROR_CONTAINS(load_model(future), "format version 99 is newer");

  const auto arch = dir.file("arch.safetensors");
  std::filesystem::copy_file(path, arch);
  edit_metadata(arch, [](nlohmann::json& j) { j["config"]["arch"] = "segformer"; });
  EXPECT_ERROR_CONTAINS(load_model(arch), "unknown model 'segformer'");

  const auto shape = dir.file("shape.safetensors");
  std::filesystem::copy_file(path, shape);
  edit_metadata(shape, [](nlohmann::json& j) {
    j["config"]["in_channels"] = 3;
    j["preprocessing"]["channels"] = {"r", "g", "b"};
  });
  EXPECT_ERROR_CONTAINS(load_model(shape), "tensor 'enc1.0.0.weight': shape [32, 1, 3, 3] does not match the model's [32, 3, 3, 3]");

  const auto width = dir.file("width.safetensors");
  std::filesystem::copy_file(path, width);
  edit_metadata(width, [](nlohmann::json& j) { j["config"]["options"]["width"] = 16; });
  EXPECT_ERROR_CONTAINS(load_model(width), "does not match the model's");

  const auto chans = dir.file("chans.safetensors");
  std::filesystem::copy_file(path, chans);
  edit_metadata(chans, [](nlohmann::json& j) { j["preprocessing"]["channels"] = {"gray", "gray"}; });
  EXPECT_ERROR_CONTAINS(load_model(chans), "preprocessing lists 2 channels but the model takes 1");

  auto bytes = read_file_bytes(path);
  bytes.resize(bytes.size() / 2);
  const auto truncated = dir.file("truncated.safetensors");
  atomic_write(truncated, [&](std::ostream& o) { o.write(reinterpret_cast<const char*>(bytes.data()), bytes.size()); });
  EXPECT_ERROR_CONTAINS(load_model(truncated), "truncated");

  EXPECT_ERROR_CONTAINS(open_model("no-such-model"), "neither a model file nor a model name");
}

}  // namespace
}  // namespace leanseg
