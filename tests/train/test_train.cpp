#include <cmath>
#include <opencv2/imgproc.hpp>

#include "leanseg/error.h"
#include "leanseg/evaluate.h"
#include "leanseg/fs.h"
#include "leanseg/model_file.h"
#include "leanseg/tensor_io.h"
#include "leanseg/train.h"
#include "model_test_util.h"
#include "train_test_util.h"
#include "train/batch_loader.h"

namespace leanseg {
namespace {

TEST(Loss, DiceBceMatchesHandComputedValues) {
  LossOptions o;  // 0.8 Dice + 0.2 BCE(pos_weight 200)
  auto target = torch::zeros({1, 1, 2, 4});
  target.index_put_({0, 0, 0}, 1.0);  // half of the pixels are foreground
  auto logits = torch::zeros_like(target);
  // sigmoid(0) = 0.5: Dice = 1 − (2·2 + eps)/(4 + 4 + eps) = 0.5; BCE = ln2·(200·4 + 4)/8.
  const double expected = 0.8 * (1 - (4 + 1e-6) / (8 + 1e-6)) + 0.2 * std::log(2.0) * (200 * 4 + 4) / 8;
  EXPECT_NEAR(dice_bce_loss(logits, target, o).item<double>(), expected, 1e-5);
  auto perfect = (target * 2 - 1) * 30;  // confident and right
  EXPECT_NEAR(dice_bce_loss(perfect, target, o).item<double>(), 0.0, 1e-6);
  o.dice_weight = 1, o.bce_weight = 0;
  EXPECT_NEAR(dice_bce_loss(-perfect, target, o).item<double>(), 1.0, 1e-5);
}

using test::disc_dataset;

using test::tiny_options;

TEST(Train, TinyModelLearnsASyntheticTask) {
  test::TempDir dir;
  TrainOptions o = tiny_options(dir.file("run"));
  o.epochs = 25;
  o.early_stop_patience = 25;
  const auto r = train_model(disc_dataset(48, 64, 1), o);
  EXPECT_GT(r.best_val_dice, 0.9) << "stop: " << r.stop_reason;
  for (const char* f : {"best.safetensors", "last.safetensors", "checkpoint.safetensors", "metrics.csv", "metrics.json", "split.json"})
    EXPECT_TRUE(std::filesystem::exists(dir.file(std::string("run/") + f))) << f;
  // The saved best model reloads with the preprocessing the run used.
  const auto m = load_model(dir.file("run/best.safetensors"));
  EXPECT_EQ(m.preprocessing.input_height, 64);
  EXPECT_EQ(m.preprocessing.mode, "resize");
}

// Training on the synthetic ultrasound generator, then the whole evaluation path (original
// resolution, ellipse fit, HC in mm) on its validation split.
TEST(Batches, ARestOfOneJoinsTheBatchBeforeIt) {
  EXPECT_EQ(batch_count(17, 8), 2u);
  EXPECT_EQ(batch_range(0, 17, 8), (std::pair<size_t, size_t>{0, 8}));
  EXPECT_EQ(batch_range(1, 17, 8), (std::pair<size_t, size_t>{8, 17}));
  EXPECT_EQ(batch_count(18, 8), 3u);  // a rest of two stays its own batch
  EXPECT_EQ(batch_range(2, 18, 8), (std::pair<size_t, size_t>{16, 18}));
  EXPECT_EQ(batch_count(16, 8), 2u);
  EXPECT_EQ(batch_count(1, 8), 1u);  // one item: one batch of one
  EXPECT_EQ(batch_count(5, 1), 5u);  // batch size 1 is what the user asked for
}

// At 32x32 the tiny efficient U-Net's deepest map is 1x1: a batch of one image there gives its
// BatchNorm one value per channel, which LibTorch refuses in training. A split whose training
// side is one more than a multiple of the batch size must still train.
TEST(Train, ATrainingSetOfOneMoreThanAMultipleOfTheBatchTrains) {
  test::TempDir dir;
  TrainOptions o = tiny_options(dir.file("probe"));
  o.input_size = 32;
  o.epochs = 1;
  const Dataset data = disc_dataset(12, 32, 2);
  train_model(data, o);
  const auto bytes = read_file_bytes(dir.file("probe/split.json"));
  const auto split = nlohmann::json::parse(bytes.begin(), bytes.end());
  const int train_count = static_cast<int>(split["train"].size());
  ASSERT_GE(train_count, 3);
  o.batch_size = train_count - 1;
  o.out_dir = dir.file("run");
  const auto r = train_model(data, o);
  EXPECT_EQ(r.history.size(), 1u);
}

// Largest |a − b| over the parameters of two models of one architecture.
double max_parameter_difference(const SegmentationModel& a, const SegmentationModel& b) {
  const auto pb = b->named_parameters(true);
  double worst = 0;
  for (const auto& p : a->named_parameters(true))
    worst = std::max(worst, (p.value() - *pb.find(p.key())).abs().max().item<double>());
  return worst;
}

// --init-from starts a run from a trained file's weights (a second stage, e.g. with the encoder
// unfrozen); a file of other model options is refused, naming the file and the tensor.
TEST(Train, InitFromStartsFromTheFilesWeightsAndRefusesOtherShapes) {
  test::TempDir dir;
  const Dataset data = disc_dataset(12, 64, 5);
  TrainOptions o = tiny_options(dir.file("first"));
  o.epochs = 1;
  train_model(data, o);
  const LoadedModel first = load_model(dir.file("first/last.safetensors"));
  TrainOptions again = tiny_options(dir.file("again"));
  again.epochs = 1;
  again.lr = 1e-12;  // a step that moves nothing: the result is where the run started
  again.seed = 9;    // another initialisation: only --init-from can make the weights equal
  again.init_from = dir.file("first/last.safetensors");
  train_model(data, again);
  EXPECT_LT(max_parameter_difference(load_model(dir.file("again/last.safetensors")).model, first.model), 1e-6);
  again.init_from.clear();
  again.out_dir = dir.file("scratch");
  train_model(data, again);
  EXPECT_GT(max_parameter_difference(load_model(dir.file("scratch/last.safetensors")).model, first.model), 1e-2);

  TrainOptions wider = tiny_options(dir.file("wider"));
  wider.model_options["channels"] = {8, 8, 16, 16, 32, 64};
  wider.init_from = dir.file("first/last.safetensors");
  EXPECT_ERROR_CONTAINS(train_model(data, wider), "--init-from '" + dir.file("first/last.safetensors") + "': tensor '");
  EXPECT_ERROR_CONTAINS(train_model(data, wider), "(model options differ?)");
}

TEST(Train, SyntheticUltrasoundEndToEnd) {
  test::TempDir dir;
  const Dataset d = make_synthetic_ultrasound(40, 96, 128, 11);
  TrainOptions o = tiny_options(dir.file("run"));
  o.input_size = 96;
  o.epochs = 30;
  o.early_stop_patience = 30;
  const auto r = train_model(d, o);
  const auto m = load_model(dir.file("run/best.safetensors"));
  const auto rep = evaluate(m, d, grouped_split(d, o.val_fraction, o.seed).val);
  EXPECT_EQ(rep.n_images, static_cast<int>(grouped_split(d, o.val_fraction, o.seed).val.size()));
  EXPECT_GT(rep.dice, 0.85) << "best val Dice during training " << r.best_val_dice;
  ASSERT_TRUE(std::isfinite(rep.hc_mae_mm));
  EXPECT_LT(rep.hc_mae_mm / d.samples[0].hc_mm, 0.15);  // within 15% of a typical head
  EXPECT_TRUE(std::isfinite(rep.hd_mm));
  EXPECT_GT(rep.latency_median_ms, 0);
}

TEST(Train, ResumeReachesExactlyTheUninterruptedWeights) {
  test::TempDir dir;
  const Dataset d = disc_dataset(20, 64, 2);
  train_model(d, tiny_options(dir.file("straight")));
  TrainOptions killed = tiny_options(dir.file("resumed"));
  killed.stop_after_epochs = 1;  // "killed" after the first epoch's checkpoint
  EXPECT_EQ(train_model(d, killed).epochs_run, 1);
  TrainOptions resumed = tiny_options(dir.file("resumed"));
  resumed.resume = true;
  const auto r = train_model(d, resumed);
  EXPECT_EQ(r.epochs_run, 3);
  const auto a = load_model(dir.file("straight/last.safetensors")), b = load_model(dir.file("resumed/last.safetensors"));
  const auto sa = state_dict(*a.model), sb = state_dict(*b.model);
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) EXPECT_TRUE(torch::equal(sa[i].second, sb[i].second)) << sa[i].first;
}

// A resumed run continues with the options its checkpoint was written with: other ones (here
// the learning rate and the quarter-turn augmentation) are refused, naming what differs; a
// larger epoch budget is allowed.
TEST(Train, ResumeRefusesOtherOptionsButMayTrainLonger) {
  test::TempDir dir;
  const Dataset d = disc_dataset(12, 64, 5);
  TrainOptions killed = tiny_options(dir.file("run"));
  killed.epochs = 2;
  killed.stop_after_epochs = 1;
  ASSERT_EQ(train_model(d, killed).epochs_run, 1);
  TrainOptions other = tiny_options(dir.file("run"));
  other.resume = true;
  other.lr = 1e-3;
  other.augment_options.rot90 = true;
  try {
    train_model(d, other);
    ADD_FAILURE() << "resumed with other options";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("checkpoint.safetensors was written with other options"), std::string::npos) << m;
    EXPECT_NE(m.find("lr 0.003 -> 0.001"), std::string::npos) << m;
    EXPECT_NE(m.find("augment_rot90 (unset) -> true"), std::string::npos) << m;
  }
  TrainOptions longer = tiny_options(dir.file("run"));
  longer.resume = true;
  longer.epochs = 3;
  EXPECT_EQ(train_model(d, longer).epochs_run, 3);
}

TEST(Train, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  test::TempDir dir;
  Dataset d = disc_dataset(16, 64, 3);
  TrainOptions o = tiny_options(dir.file("run"));
  o.epochs = 1;
  train_model(d, o);
  const auto before = read_file_bytes(dir.file("run/checkpoint.safetensors"));
  for (auto& s : d.samples) s.image.at<float>(0, 0) = std::nanf("");
  o.epochs = 2;
  o.resume = true;
  EXPECT_ERROR_CONTAINS(train_model(d, o), "the loss became NaN at epoch 2");
  EXPECT_EQ(read_file_bytes(dir.file("run/checkpoint.safetensors")), before);
}

TEST(Train, BadOptionsAreRejected) {
  const Dataset d = disc_dataset(4, 64, 4);
  TrainOptions o = tiny_options("");
  EXPECT_ERROR_CONTAINS(train_model(d, o), "--out is required");
  o.out_dir = "/tmp/leanseg_never";
  o.input_size = 100;
  EXPECT_ERROR_CONTAINS(train_model(d, o), "multiple of 32");
  EXPECT_ERROR_CONTAINS(preset("fast"), "unknown preset 'fast'");
}

TEST(Train, AutoPosWeightIsTheBackgroundToForegroundRatio) {
  Dataset d = disc_dataset(2, 64, 5);
  d.samples[0].mask.setTo(0);
  d.samples[0].mask(cv::Rect(0, 0, 8, 8)).setTo(1);   // 64 of 4096 px
  d.samples[1].mask.setTo(0);
  d.samples[1].mask(cv::Rect(0, 0, 16, 4)).setTo(1);  // 64 of 4096 px
  EXPECT_DOUBLE_EQ(auto_pos_weight(d, {0, 1}), (8192.0 - 128) / 128);
}

}  // namespace
}  // namespace leanseg
