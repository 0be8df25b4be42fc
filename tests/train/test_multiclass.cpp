// Multi-class segmentation end to end (issue 20, item 1): the K-channel head and its config,
// the Dice + cross-entropy loss, a tiny model learning the synthetic 3-class set, per-class
// evaluation, and the deployment paths (model files, structured pruning, ONNX, the runtime's
// engine with argmax in fp32 and int8, and the command line).
#include <chrono>
#include <filesystem>
#include <opencv2/dnn.hpp>
#include <opencv2/imgcodecs.hpp>
#include <set>

#include "leanseg/compress.h"
#include "leanseg/error.h"
#include "leanseg/evaluate.h"
#include "leanseg/fs.h"
#include "leanseg/graph_export.h"
#include "leanseg/inference.h"
#include "leanseg/metrics.h"
#include "leanseg/model_file.h"
#include "leanseg/onnx_export.h"
#include "leanseg/runtime.h"
#include "leanseg/runtime_file.h"
#include "leanseg/train.h"
#include "model_test_util.h"
#include "runtime/calibrate.h"
#include "train_test_util.h"

namespace leanseg {
namespace {
namespace fs = std::filesystem;

ModelConfig tiny_config(int num_classes) {
  ModelConfig c;
  c.arch = "efficient-unet";
  c.num_classes = num_classes;
  c.options = {{"channels", {8, 8, 16, 16, 32, 32}}, {"reduction", 2}, {"attention_heads", 2}};
  return c;
}

SegmentationModel random_tiny(int num_classes) {
  auto m = create_model(tiny_config(num_classes));
  test::randomize_weights(*m, 5);
  m->eval();
  return m;
}

torch::Tensor logits_of(SegmentationModel& m, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return m->forward(x);
}

TEST(MultiClassLoss, DiceCeMatchesHandComputedValues) {
  LossOptions o;  // 0.8 Dice + 0.2 CE
  // Labels 0 1 / 2 2 and uniform logits: p = 1/3 everywhere. Class 1: |P∩Y| = 1/3, |P| + |Y| = 4/3 + 1;
  // class 2: 2/3 and 4/3 + 2. CE = ln 3.
  const auto target = torch::tensor({0.f, 1.f, 2.f, 2.f}).view({1, 1, 2, 2});
  const auto uniform = torch::zeros({1, 3, 2, 2});
  const double dice1 = (2.0 / 3 + 1e-6) / (7.0 / 3 + 1e-6), dice2 = (4.0 / 3 + 1e-6) / (10.0 / 3 + 1e-6);
  EXPECT_NEAR(dice_ce_loss(uniform, target, o).item<double>(), 0.8 * (1 - (dice1 + dice2) / 2) + 0.2 * std::log(3.0), 1e-5);
  EXPECT_NEAR(segmentation_loss(uniform, target, o).item<double>(), dice_ce_loss(uniform, target, o).item<double>(), 0);
  // Confident and right: ~0.
  const auto perfect = torch::one_hot(target.squeeze(1).to(torch::kLong), 3).permute({0, 3, 1, 2}).to(torch::kFloat) * 40;
  EXPECT_NEAR(dice_ce_loss(perfect, target, o).item<double>(), 0.0, 1e-5);
  // Class weights: CE = Σ w_y · (−log p_y) / Σ w_y over the pixels.
  o.dice_weight = 0, o.bce_weight = 1, o.class_weights = {0.5, 1, 3};
  torch::manual_seed(1);
  const auto logits = torch::randn({1, 3, 2, 2});
  const auto logp = torch::log_softmax(logits, 1);
  const int labels[4] = {0, 1, 2, 2};
  double num = 0, den = 0;
  for (int i = 0; i < 4; ++i) {
    const double w = o.class_weights[labels[i]];
    num += w * -logp[0][labels[i]][i / 2][i % 2].item<double>();
    den += w;
  }
  EXPECT_NEAR(dice_ce_loss(logits, target, o).item<double>(), num / den, 1e-5);
  o.class_weights = {1, 1};
  EXPECT_ERROR_CONTAINS(dice_ce_loss(logits, target, o), "2 class weights given for 3 classes");
}

TEST(MultiClassLoss, DistillationOnClassLogitsIsMinimalWhereStudentEqualsTeacher) {
  torch::manual_seed(2);
  const auto teacher = torch::randn({1, 3, 4, 4});
  auto student = teacher.clone().requires_grad_(true);
  distillation_loss(student, teacher, 2.0).backward();
  EXPECT_LE(student.grad().abs().max().item<double>(), 1e-6);
  EXPECT_GT(distillation_loss(torch::zeros({1, 3, 4, 4}), teacher, 2.0).item<double>(),
            distillation_loss(teacher, teacher, 2.0).item<double>());
}

// The head has K channels; the config says K; binary configs (and files) are as before.
TEST(MultiClassModel, ConfigRecordsTheClassesAndBinaryConfigsStayAsTheyWere) {
  auto m = random_tiny(3);
  EXPECT_EQ(logits_of(m, torch::randn({2, 1, 64, 64})).sizes(), (std::vector<int64_t>{2, 3, 64, 64}));
  EXPECT_EQ(m->config().to_json().at("num_classes"), 3);
  const nlohmann::json binary = create_model(tiny_config(2))->config().to_json();
  EXPECT_FALSE(binary.contains("num_classes")) << binary.dump();
  EXPECT_EQ(ModelConfig::from_json(binary).num_classes, 2);
  EXPECT_EQ(ModelConfig::from_json(binary).output_channels(), 1);
  nlohmann::json bad = binary;
  bad["num_classes"] = 1;
  EXPECT_ERROR_CONTAINS(ModelConfig::from_json(bad), "'num_classes' must be an integer in [2, 64], got 1");
  bad["num_classes"] = "3";
  EXPECT_ERROR_CONTAINS(ModelConfig::from_json(bad), "'num_classes' must be an integer in [2, 64]");
  for (const char* arch : {"unet-32", "mobilenet-aspp-se-unet-lite"}) {
    ModelConfig c;
    c.arch = arch;
    c.num_classes = 4;
    EXPECT_EQ(create_model(c)->named_parameters()["head.weight"].size(0), 4) << arch;
  }
  test::TempDir dir;
  save_model(dir.file("m.safetensors"), m, Preprocessing{});
  SegmentationModel back = load_model(dir.file("m.safetensors")).model;
  EXPECT_EQ(back->config().num_classes, 3);
  const auto x = torch::randn({1, 1, 64, 64});
  EXPECT_TRUE(torch::equal(logits_of(m, x), logits_of(back, x)));
}

// Structured pruning shrinks the inside of the network; the head keeps its K outputs.
TEST(MultiClassModel, StructuredPruningKeepsTheClassChannels) {
  auto m = random_tiny(3);
  StructuredPruneOptions o;
  o.ratio = 0.25;
  const StructuredPlan plan = structured_plan(*m, o);
  ASSERT_GT(plan.removed_channels, 0);
  apply_structured(*m, plan);
  EXPECT_EQ(m->named_parameters()["head.weight"].size(0), 3);
  EXPECT_EQ(logits_of(m, torch::randn({1, 1, 64, 64})).sizes(), (std::vector<int64_t>{1, 3, 64, 64}));
  test::TempDir dir;
  save_model(dir.file("p.safetensors"), m, Preprocessing{});
  EXPECT_EQ(load_model(dir.file("p.safetensors")).model->config().num_classes, 3);
}

// The exported graph's output is [1, K, H, W]; OpenCV's DNN module (a runtime nobody here wrote)
// computes what LibTorch does.
TEST(MultiClassExport, OnnxOutputHasTheClassChannelsAndMatchesLibTorch) {
  auto m = random_tiny(3);
  GraphInputShape shape;
  shape.height = shape.width = 64;
  const Graph g = model_graph(*m, shape);
  EXPECT_EQ(g.outputs[0].shape, (std::vector<int64_t>{1, 3, 64, 64}));
  test::TempDir dir;
  write_onnx(g, dir.file("m.onnx"), OnnxOptions{});
  cv::dnn::Net net = cv::dnn::readNetFromONNX(dir.file("m.onnx"));
  torch::manual_seed(4);
  const auto x = torch::randn({1, 1, 64, 64});
  const std::vector<int> dims = {1, 1, 64, 64};
  net.setInput(cv::Mat(4, dims.data(), CV_32F, x.data_ptr<float>()), "image");
  const cv::Mat out = net.forward();
  ASSERT_EQ(out.dims, 4);
  EXPECT_EQ(out.size[1], 3);
  const auto ours = torch::from_blob(const_cast<float*>(out.ptr<float>()), {1, 3, 64, 64}, torch::kFloat32).clone();
  EXPECT_LE(test::relative_difference(ours, logits_of(m, x)), 1e-4);
}

// The engine's K-channel logits equal LibTorch's, and its argmax labels are H×W class indices.
TEST(MultiClassRuntime, EngineMatchesLibTorchAndItsArgmaxIsTheLabelMap) {
  auto m = random_tiny(3);
  GraphInputShape shape;
  shape.height = 64, shape.width = 96;
  RuntimeModel rt;
  rt.graph = model_graph(*m, shape);
  rt.config = m->config().to_json();
  rt.preprocessing = Preprocessing{}.to_json();
  rt.size_divisor = m->size_divisor();
  test::TempDir dir;
  write_runtime_model(rt, dir.file("m.lsr"));
  EXPECT_EQ(read_runtime_model(dir.file("m.lsr")).config.at("num_classes"), 3);
  auto engine = runtime::Engine::load(dir.file("m.lsr"), {runtime::Precision::F32, 2});
  EXPECT_EQ(engine.output_channels(), 3);
  torch::manual_seed(6);
  const auto x = torch::randn({1, 1, 64, 96});
  const auto reference = logits_of(m, x);
  const auto& logits = engine.run(x.data_ptr<float>());
  ASSERT_EQ(logits.size(), 3u * 64 * 96);
  const auto ours = torch::from_blob(const_cast<float*>(logits.data()), {1, 3, 64, 96}, torch::kFloat32).clone();
  EXPECT_LE(test::relative_difference(ours, reference), 1e-4);
  std::vector<uint8_t> labels(64 * 96, 255);
  engine.run_labels(x.data_ptr<float>(), labels.data());
  const auto expected = reference.argmax(1).to(torch::kUInt8).contiguous();
  const auto got = torch::from_blob(labels.data(), {1, 64, 96}, torch::kUInt8);
  EXPECT_GE((got == expected).to(torch::kFloat).mean().item<double>(), 0.999);  // near-ties may flip in fp32
  EXPECT_LE(got.max().item<int>(), 2);
  // A re-planned size gives labels of the new size (the output buffer follows).
  engine.set_input_size(32, 32);
  EXPECT_EQ(engine.run(torch::zeros({1, 1, 32, 32}).data_ptr<float>()).size(), 3u * 32 * 32);
}

// The shared run: a tiny model trained once on the synthetic 3-class set.
class MultiClassRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir;
    data_ = new Dataset(make_synthetic_classes(48, 64, 64, 11));
    TrainOptions o = test::tiny_options(dir_->file("run"));
    o.pos_weight_auto = false;
    o.epochs = 20;
    o.early_stop_patience = 20;
    o.loss.class_weights = {0.5, 1, 1};
    const auto start = std::chrono::steady_clock::now();
    result_ = new TrainResult(train_model(*data_, o));
    seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("3-class training: best val mean foreground Dice %.4f at epoch %d of %d, %.1f s\n",
                result_->best_val_dice, result_->best_epoch, result_->epochs_run, seconds_);
  }
  static void TearDownTestSuite() {
    delete result_;
    delete data_;
    delete dir_;
  }
  static std::string best() { return dir_->file("run/best.safetensors"); }
  static std::vector<size_t> val_indices() {
    const auto bytes = read_file_bytes(dir_->file("run/split.json"));
    const auto split = nlohmann::json::parse(bytes.begin(), bytes.end());
    std::vector<size_t> idx;
    for (const auto& id : split["val"])
      for (size_t i = 0; i < data_->samples.size(); ++i)
        if (data_->samples[i].id == id) idx.push_back(i);
    return idx;
  }
  // The dataset as a folder: 8-bit PNG images, label masks as PNG (one as a 16-bit TIFF).
  static std::string write_folder(const std::vector<size_t>& idx) {
    const std::string root = dir_->file("folder");
    fs::create_directories(root + "/images");
    fs::create_directories(root + "/masks");
    for (size_t k = 0; k < idx.size(); ++k) {
      const Sample& s = data_->samples[idx[k]];
      cv::Mat image8, mask16;
      s.image.convertTo(image8, CV_8U, 255.0);
      cv::imwrite(root + "/images/" + s.id + ".png", image8);
      if (k == 0) {
        s.mask.convertTo(mask16, CV_16U);
        cv::imwrite(root + "/masks/" + s.id + ".tif", mask16);
      } else {
        cv::imwrite(root + "/masks/" + s.id + ".png", s.mask);
      }
    }
    return root;
  }
  static test::TempDir* dir_;
  static Dataset* data_;
  static TrainResult* result_;
  static double seconds_;
};
test::TempDir* MultiClassRun::dir_ = nullptr;
Dataset* MultiClassRun::data_ = nullptr;
TrainResult* MultiClassRun::result_ = nullptr;
double MultiClassRun::seconds_ = 0;

TEST_F(MultiClassRun, TinyModelLearnsEllipseAndRing) {
  EXPECT_GT(result_->best_val_dice, 0.9) << result_->stop_reason;
  const LoadedModel m = load_model(best());
  EXPECT_EQ(m.model->config().num_classes, 3);
  EXPECT_EQ(m.extra["train_options"]["class_weights"], nlohmann::json({0.5, 1, 1}));
}

// Scores at original resolution, per class and their means, as JSON with one key per class.
TEST_F(MultiClassRun, EvaluationReportsEveryClass) {
  const EvalReport rep = evaluate(load_model(best()), *data_, val_indices());
  ASSERT_EQ(rep.classes.size(), 2u);
  EXPECT_GT(rep.classes[0].dice, 0.85);
  EXPECT_GT(rep.classes[1].dice, 0.85);
  EXPECT_NEAR(rep.dice, (rep.classes[0].dice + rep.classes[1].dice) / 2, 1e-12);
  const auto j = rep.to_json(true);
  EXPECT_EQ(j["num_classes"], 3);
  for (const char* c : {"1", "2"})
    for (const char* k : {"dice", "iou", "hd95", "dice_pixels"}) EXPECT_TRUE(j["classes"][c].contains(k)) << c << " " << k;
  EXPECT_FALSE(j["classes"].contains("0"));  // background is not scored
  EXPECT_TRUE(j["images"][0]["classes"].contains("2"));
  EXPECT_LT(j["classes"]["2"]["hd95"].get<double>(), 5.0);  // px: the ring's outline within a few pixels
  // A binary model on the same 3-class data is refused, not binarised.
  Predictor binary = libtorch_predictor(load_model(best()));
  binary.num_classes = 2;
  EXPECT_ERROR_CONTAINS(evaluate_predictor(binary, *data_), "the model segments 2 classes but");
}

// The runtime in fp32 and calibrated int8 labels (almost) every pixel as LibTorch does.
TEST_F(MultiClassRun, EngineLabelsAgreeWithLibTorchInFp32AndInt8) {
  LoadedModel m = load_model(best());
  GraphInputShape shape;
  shape.height = shape.width = 64;
  RuntimeModel rt;
  rt.graph = model_graph(*m.model, shape);
  const Preprocessing& pre = m.preprocessing;
  std::vector<runtime::PlainTensor> calibration;
  for (size_t i = 0; i < 8; ++i) {
    const auto t = image_to_tensor(data_->samples[i].image, pre).contiguous();
    calibration.push_back(runtime::PlainTensor::floats({1, 1, 64, 64}, {t.data_ptr<float>(), t.data_ptr<float>() + t.numel()}));
  }
  rt.activation_absmax = runtime::calibrate_activations(rt.graph, calibration);
  for (const auto precision : {runtime::Precision::F32, runtime::Precision::I8}) {
    auto engine = runtime::Engine::from_model(rt, {precision, 2});
    int64_t agree = 0, total = 0;
    for (size_t i : val_indices()) {
      const auto x = image_to_tensor(data_->samples[i].image, pre).contiguous();
      std::vector<uint8_t> labels(64 * 64);
      engine.run_labels(x.data_ptr<float>(), labels.data());
      const auto expected = logits_of(m.model, x).argmax(1).to(torch::kUInt8).contiguous();
      agree += (torch::from_blob(labels.data(), {1, 64, 64}, torch::kUInt8) == expected).sum().item<int64_t>();
      total += 64 * 64;
    }
    const double share = static_cast<double>(agree) / total;
    std::printf("%s labels agree with LibTorch on %.4f%% of pixels\n", runtime::precision_name(precision), 100 * share);
    EXPECT_GE(share, precision == runtime::Precision::F32 ? 0.9999 : 0.98);
  }
}

// The command line: eval (per-class JSON) and predict (label maps, class probabilities,
// overlays) on a folder of label masks; export to .lsr and leanseg-infer; a binary request on
// label masks fails naming the file and the values.
TEST_F(MultiClassRun, CommandLineEvalPredictExportAndInfer) {
  const std::string folder = write_folder(val_indices());
  auto r = test::run_cli("eval --model " + best() + " --data " + folder + " --json", 2);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(j["num_classes"], 3);
  EXPECT_GT(j["classes"]["1"]["dice"].get<double>(), 0.85);
  EXPECT_GT(j["classes"]["2"]["dice"].get<double>(), 0.85);

  const std::string image = folder + "/images/" + data_->samples[val_indices()[0]].id + ".png";
  r = test::run_cli("predict --model " + best() + " " + image + " --overlay --out " + dir_->file("pred"), 2);
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string stem = dir_->file("pred/" + data_->samples[val_indices()[0]].id);
  for (const char* suffix : {"_labels.png", "_prob_0.png", "_prob_1.png", "_prob_2.png", "_overlay.png"})
    EXPECT_TRUE(fs::exists(stem + suffix)) << suffix;
  const cv::Mat labels = cv::imread(stem + "_labels.png", cv::IMREAD_UNCHANGED);
  ASSERT_EQ(labels.type(), CV_8UC1);
  EXPECT_GT(mean_foreground_dice(class_overlaps(labels, data_->samples[val_indices()[0]].mask, 3)), 0.85);

  r = test::run_cli("export --model " + best() + " --format runtime --calibrate " + folder + " --out " + dir_->file("m.lsr"), 2);
  ASSERT_EQ(r.code, 0) << r.out;
  r = test::run_command(std::string(LEANSEG_INFER_PATH) + " --threads 2 " + dir_->file("m.lsr") + " " + image +
                        " --precision int8 --out " + dir_->file("infer"));
  ASSERT_EQ(r.code, 0) << r.out;
  const cv::Mat infer_labels =
      cv::imread(dir_->file("infer/" + data_->samples[val_indices()[0]].id + "_labels.png"), cv::IMREAD_UNCHANGED);
  ASSERT_FALSE(infer_labels.empty()) << r.out;
  EXPECT_GE(1.0 - cv::countNonZero(infer_labels != labels) / static_cast<double>(labels.total()), 0.98);

  r = test::run_cli("train --preset demo --data " + folder + " --num-classes 2 --epochs 1 --out " + dir_->file("bin"), 2);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("is not binary: it holds the values 0, 1, 2"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace leanseg
