// Proof that the MobileNetV2 port and the weight loader are exact: the full ImageNet classifier
// built from the same code reproduces torchvision's top-5 logits on the reference images.
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "leanseg/error.h"
#include "leanseg/model.h"
#include "leanseg/safetensors.h"
#include "models/mobilenet_v2.h"
#include "test_util.h"

namespace leanseg {
namespace {

struct Reference {
  std::string file;
  std::vector<std::pair<int, float>> top5;
};

std::vector<Reference> read_references(const std::string& path) {
  std::ifstream in(path);
  std::vector<Reference> refs;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    Reference r;
    std::string padding, pair;
    ss >> r.file >> padding;
    if (padding != "torch") continue;
    while (ss >> pair) {
      const auto colon = pair.find(':');
      r.top5.emplace_back(std::stoi(pair.substr(0, colon)), std::stof(pair.substr(colon + 1)));
    }
    refs.push_back(r);
  }
  return refs;
}

torch::Tensor load_rgb(const std::string& path) {
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
  if (bgr.empty()) throw Error("cannot read " + path);
  auto t = torch::from_blob(bgr.data, {bgr.rows, bgr.cols, 3}, torch::kUInt8).clone();
  t = t.flip(2).permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32);  // BGR → RGB, NCHW
  return t / 127.5 - 1.0;
}

bool have_weights() { return std::filesystem::exists(test::weights_path()); }

TEST(MobileNetV2, ReproducesTorchvisionImageNetLogits) {
  if (!have_weights()) GTEST_SKIP() << "no " << test::weights_path() << " (../shared/weights absent)";
  const std::string dir = test::shared_dir() + "/weights/testimages/";
  const auto refs = read_references(dir + "reference_top5.txt");
  ASSERT_EQ(refs.size(), 4u);
  MobileNetV2Classifier net;
  load_mobilenet_v2_weights(*net, test::weights_path());
  net->eval();
  torch::NoGradGuard no_grad;
  for (const auto& r : refs) {
    SCOPED_TRACE(r.file);
    auto logits = net->forward(load_rgb(dir + r.file))[0];
    auto top = logits.topk(5);
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(std::get<1>(top)[i].item<int64_t>(), r.top5[i].first);
      EXPECT_NEAR(logits[r.top5[i].first].item<float>(), r.top5[i].second, 1e-3);
    }
  }
}

TEST(MobileNetV2, SumStemIsExactForGreyCopiedToRgb) {
  if (!have_weights()) GTEST_SKIP() << "no " << test::weights_path();
  MobileNetV2Features rgb(3), grey_sum(1), grey_mean(1);
  load_mobilenet_v2_weights(*rgb, test::weights_path());
  load_mobilenet_v2_weights(*grey_sum, test::weights_path(), "", StemInit::Sum);
  load_mobilenet_v2_weights(*grey_mean, test::weights_path(), "", StemInit::Mean);
  rgb->eval(), grey_sum->eval(), grey_mean->eval();
  torch::NoGradGuard no_grad;
  auto g = torch::rand({1, 1, 64, 64}) * 2 - 1;
  EXPECT_TRUE(torch::allclose(grey_sum->forward(g), rgb->forward(g.repeat({1, 3, 1, 1})), 1e-4, 1e-4));
  auto w_rgb = rgb->named_parameters()["features.0.0.weight"];
  auto w_mean = grey_mean->named_parameters()["features.0.0.weight"];
  EXPECT_TRUE(torch::allclose(w_mean, w_rgb.mean(1, true)));
}

TEST(MobileNetV2, EncoderWeightsLoadIntoM1AndStayFrozen) {
  if (!have_weights()) GTEST_SKIP() << "no " << test::weights_path();
  auto m = create_model("mobilenet-aspp-se-unet");
  load_mobilenet_v2_weights(*m, test::weights_path(), "encoder.");
  auto w = m->named_parameters()["encoder.features.18.0.weight"];
  EXPECT_FALSE(w.requires_grad());
  EXPECT_GT(w.abs().sum().item<double>(), 0);
}

TEST(MobileNetV2, BadWeightFilesAreRejected) {
  test::TempDir dir;
  MobileNetV2Features f(1);
  EXPECT_ERROR_CONTAINS(load_mobilenet_v2_weights(*f, dir.file("none.safetensors")), "no such file");
  if (!have_weights()) return;
  // A classifier-less encoder file missing one tensor.
  const auto full = SafeTensorsFile::open(test::weights_path());
  std::vector<TensorToWrite> kept;
  for (const auto& t : full.tensors())
    if (t.name != "features.5.conv.1.1.running_var") kept.push_back({t.name, t.dtype, t.shape, full.data(t), t.nbytes()});
  write_safetensors(dir.file("partial.safetensors"), kept, {});
  EXPECT_ERROR_CONTAINS(load_mobilenet_v2_weights(*f, dir.file("partial.safetensors")),
                        "is missing tensor 'features.5.conv.1.1.running_var'");
}

}  // namespace
}  // namespace leanseg
