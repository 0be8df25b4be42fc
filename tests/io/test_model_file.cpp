#include <limits>

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

// NaN or infinite weights (a diverged run, a damaged file) used to load and give an empty mask.
TEST(ModelFile, NonFiniteWeightsAreRefusedNamingFileAndTensor) {
  test::TempDir dir;
  auto m = create_model("unet-32");
  {
    torch::NoGradGuard ng;
    for (auto& [name, t] : state_dict(*m))
      if (name == "enc1.0.0.weight") t.view({-1})[5] = std::numeric_limits<float>::quiet_NaN();
  }
  const auto nan_path = dir.file("nan.safetensors");
  save_model(nan_path, m, Preprocessing{});
  EXPECT_ERROR_CONTAINS(load_model(nan_path), "'" + nan_path + "': tensor 'enc1.0.0.weight' holds 1 non-finite value "
                                              "(the first, NaN, at element 5 of 288)");

  auto b = create_model("unet-32");
  std::string buffer;
  {
    torch::NoGradGuard ng;
    for (auto& [name, t] : state_dict(*b))
      if (buffer.empty() && name.find("running_var") != std::string::npos) {
        buffer = name;
        t.view({-1})[0] = std::numeric_limits<float>::infinity();
      }
  }
  ASSERT_FALSE(buffer.empty());
  const auto inf_path = dir.file("inf.safetensors");
  save_model(inf_path, b, Preprocessing{}, nlohmann::json::object(), WeightStorage{"f16"});  // compact storage too
  EXPECT_ERROR_CONTAINS(load_model(inf_path), "'" + inf_path + "': tensor '" + buffer + "' holds 1 non-finite value "
                                              "(the first, +inf, at element 0 of");
  // A weight decoded from f16 storage.
  auto h = create_model("unet-32");
  {
    torch::NoGradGuard ng;
    for (auto& [name, t] : state_dict(*h))
      if (name == "enc1.0.0.weight") t.view({-1})[7] = -std::numeric_limits<float>::infinity();
  }
  const auto f16_path = dir.file("f16.safetensors");
  save_model(f16_path, h, Preprocessing{}, nlohmann::json::object(), WeightStorage{"f16"});
  EXPECT_ERROR_CONTAINS(load_model(f16_path), "tensor 'enc1.0.0.weight' holds 1 non-finite value (the first, -inf, at element 7");
}

// --- hostile metadata (issue 17) ------------------------------------------------------------------
// Config values that used to kill every command loading the model (a division by zero in a
// module constructor), or build absurd layers, or wrap: refused by the registry's one config
// check before any module is built, with the file and the option named.

class HostileModelConfig : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    save_model(dir_->file("lite.safetensors"), create_model("mobilenet-aspp-se-unet-lite"), Preprocessing{});
    save_model(dir_->file("m3.safetensors"), create_model("efficient-unet"), Preprocessing{});
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  // The message of load_model on a copy of `source` edited by `edit` ("loaded" if it loads).
  static std::string load_error(const std::string& source, const std::function<void(nlohmann::json&)>& edit,
                                std::string* path_out = nullptr) {
    const std::string path = dir_->file("edited-" + std::to_string(counter_++) + ".safetensors");
    std::filesystem::copy_file(dir_->file(source), path);
    edit_metadata(path, edit);
    if (path_out) *path_out = path;
    try {
      load_model(path);
    } catch (const Error& e) {
      return e.what();
    }
    return "loaded";
  }
  // Expects exactly the message "'<path of the edited copy>': <rest>".
  static void expect_refused(const std::string& source, const std::function<void(nlohmann::json&)>& edit,
                             const std::string& rest) {
    std::string path;
    const std::string message = load_error(source, edit, &path);
    EXPECT_EQ(message, "'" + path + "': " + rest);
  }
  static test::TempDir* dir_;
  static int counter_;
};
test::TempDir* HostileModelConfig::dir_ = nullptr;
int HostileModelConfig::counter_ = 0;

TEST_F(HostileModelConfig, SeReductionZeroIsRefused) {
  expect_refused("lite.safetensors", [](nlohmann::json& j) { j["config"]["options"]["se_reduction"] = 0; },
                 "model 'mobilenet-aspp-se-unet-lite': option 'se_reduction' must be an integer in [1, 65536], got 0");
}

TEST_F(HostileModelConfig, AsppPoolGroupsZeroOrNotDividingIsRefused) {
  expect_refused("lite.safetensors", [](nlohmann::json& j) { j["config"]["options"]["aspp_pool_groups"] = 0; },
                 "model 'mobilenet-aspp-se-unet-lite': option 'aspp_pool_groups' must be an integer in [1, 65536], got 0");
  expect_refused("lite.safetensors", [](nlohmann::json& j) { j["config"]["options"]["aspp_pool_groups"] = 3; },
                 "model 'mobilenet-aspp-se-unet-lite': option 'aspp_pool_groups' (3) must divide "
                 "'aspp_branch_channels' 64");
}

TEST_F(HostileModelConfig, AttentionHeadsZeroOrNotDividingIsRefused) {
  expect_refused("m3.safetensors", [](nlohmann::json& j) { j["config"]["options"]["attention_heads"] = 0; },
                 "model 'efficient-unet': option 'attention_heads' must be an integer in [1, 65536], got 0");
  expect_refused("m3.safetensors", [](nlohmann::json& j) { j["config"]["options"]["attention_heads"] = 5; },
                 "model 'efficient-unet': option 'attention_heads' (5) must divide the bottleneck's channels "
                 "('channels'[5] = 512)");
  expect_refused("m3.safetensors", [](nlohmann::json& j) { j["config"]["options"]["reduction"] = 0; },
                 "model 'efficient-unet': option 'reduction' must be an integer in [1, 65536], got 0");
}

TEST_F(HostileModelConfig, NegativeAndAbsurdWidthsAreRefused) {
  expect_refused("lite.safetensors",
                 [](nlohmann::json& j) { j["config"]["options"]["decoder_channels"] = {-256, 128, 64, 32, 32}; },
                 "model 'mobilenet-aspp-se-unet-lite': option 'decoder_channels' must hold 5 integers in [1, 65536], "
                 "got [-256,128,64,32,32]");
  expect_refused("lite.safetensors", [](nlohmann::json& j) { j["config"]["options"]["aspp_out_channels"] = 1000000; },
                 "model 'mobilenet-aspp-se-unet-lite': option 'aspp_out_channels' must be an integer in [1, 65536], "
                 "got 1000000");
  expect_refused("lite.safetensors", [](nlohmann::json& j) { j["config"]["options"]["aspp_rates"] = {6, 0}; },
                 "model 'mobilenet-aspp-se-unet-lite': option 'aspp_rates' must hold 1 to 16 integers in [1, 16384], "
                 "got [6,0]");
  expect_refused("m3.safetensors",
                 [](nlohmann::json& j) { j["config"]["options"]["channels"] = {32, 64, 128, 256, 384, 131072}; },
                 "model 'efficient-unet': option 'channels' must hold 6 integers in [1, 65536], "
                 "got [32,64,128,256,384,131072]");
}

TEST_F(HostileModelConfig, DropoutOutsideZeroToOneIsRefused) {
  expect_refused("lite.safetensors", [](nlohmann::json& j) { j["config"]["options"]["dropout"] = 1.0; },
                 "model 'mobilenet-aspp-se-unet-lite': option 'dropout' must be a number in [0, 1), got 1.0");
  expect_refused("lite.safetensors", [](nlohmann::json& j) { j["config"]["options"]["dropout"] = -0.5; },
                 "model 'mobilenet-aspp-se-unet-lite': option 'dropout' must be a number in [0, 1), got -0.5");
}

TEST_F(HostileModelConfig, WrongJsonTypesAreRefused) {
  expect_refused("lite.safetensors", [](nlohmann::json& j) { j["config"]["options"]["se_reduction"] = "16"; },
                 "model 'mobilenet-aspp-se-unet-lite': option 'se_reduction' should look like 16, got \"16\"");
  expect_refused("lite.safetensors", [](nlohmann::json& j) { j["config"]["options"]["aspp_rates"] = {6.5, 12}; },
                 "model 'mobilenet-aspp-se-unet-lite': option 'aspp_rates' must hold 1 to 16 integers in [1, 16384], "
                 "got [6.5,12]");
  expect_refused("lite.safetensors", [](nlohmann::json& j) { j["config"]["options"]["separable"] = 1; },
                 "model 'mobilenet-aspp-se-unet-lite': option 'separable' should look like true, got 1");
  expect_refused("lite.safetensors", [](nlohmann::json& j) { j["config"]["options"]["stem_init"] = "max"; },
                 "model 'mobilenet-aspp-se-unet-lite': option 'stem_init' must be one of 'mean', 'sum', got \"max\"");
}

TEST_F(HostileModelConfig, IntegersThatWrapAreRefused) {
  expect_refused("lite.safetensors", [](nlohmann::json& j) { j["config"]["in_channels"] = 4294967297ull; },
                 "model config: 'in_channels' 4294967297 does not fit in an int");
  expect_refused("lite.safetensors",
                 [](nlohmann::json& j) { j["config"]["options"]["se_reduction"] = 18446744073709551615ull; },
                 "model 'mobilenet-aspp-se-unet-lite': option 'se_reduction' must be an integer in [1, 65536], "
                 "got 18446744073709551615");
  expect_refused("lite.safetensors", [](nlohmann::json& j) { j["preprocessing"]["input_height"] = 4294967360ull; },
                 "preprocessing field 'input_height' should be an integer that fits in an int, got 4294967360");
}

TEST_F(HostileModelConfig, AbsurdPreprocessingInputSizeIsRefused) {
  expect_refused("lite.safetensors", [](nlohmann::json& j) { j["preprocessing"]["input_height"] = 1000000000; },
                 "preprocessing: input size 1000000000x256 (HxW) exceeds the limit of 16384 pixels per side");
}

TEST_F(HostileModelConfig, TheUneditedFilesLoad) {  // the edits above are what is refused
  EXPECT_EQ(load_error("lite.safetensors", [](nlohmann::json&) {}), "loaded");
  EXPECT_EQ(load_error("m3.safetensors", [](nlohmann::json&) {}), "loaded");
}

}  // namespace
}  // namespace leanseg
