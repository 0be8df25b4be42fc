// Run configuration files (src/train/train_config.cpp): YAML and JSON read into one schema, every
// recipe setting round-trips, and wrong files fail naming the file and the key. Also the
// trainer's use of the plateau rule and early stopping (the rules themselves:
// test_schedule.cpp).
#include <fstream>

#include "leanseg/error.h"
#include "leanseg/train.h"
#include "model_test_util.h"
#include "train/schedule.h"
#include "train_test_util.h"

namespace leanseg {
namespace {

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

TEST(TrainConfig, YamlSetsEveryRecipeSettingOfTheSpec) {
  test::TempDir dir;
  write_text(dir.file("run.yaml"), R"(# a user's recipe
preset: demo
data: {dir: images_and_masks, dataset: folder}
model: mobilenet-aspp-se-unet-lite
model_options: {encoder_frozen: false, stem_init: sum}
encoder_weights: weights/mnv2.safetensors
dice_weight: 0.7
bce_weight: 0.3
eps: 1e-5
weight_decay: 0.0005
betas: [0.85, 0.995]
plateau_patience: 7
plateau_factor: 0.25
min_lr: 1.0e-7
early_stop_patience: 20
pos_weight: 12
lr: 3e-4
seed: 7
augmentation: {rot90: true, flip_p: 0.25}
qat: {bits: 8, per_channel: true}
)");
  const nlohmann::json j = read_config_file(dir.file("run.yaml"));
  TrainOptions o = preset("hc18");
  apply_train_config(j, o, dir.file("run.yaml"));
  EXPECT_EQ(o.model, "mobilenet-aspp-se-unet-lite");
  EXPECT_EQ(o.model_options, (nlohmann::json{{"encoder_frozen", false}, {"stem_init", "sum"}}));
  EXPECT_EQ(o.encoder_weights, dir.file("weights/mnv2.safetensors"));  // relative to the file's folder
  EXPECT_EQ(o.data_source["dir"], dir.file("images_and_masks"));
  EXPECT_EQ(o.data_source["dataset"], "folder");
  EXPECT_EQ(o.loss.dice_weight, 0.7);
  EXPECT_EQ(o.loss.bce_weight, 0.3);
  EXPECT_EQ(o.loss.eps, 1e-5);
  EXPECT_EQ(o.weight_decay, 0.0005);
  EXPECT_EQ(o.beta1, 0.85);
  EXPECT_EQ(o.beta2, 0.995);
  EXPECT_EQ(o.plateau_patience, 7);
  EXPECT_EQ(o.plateau_factor, 0.25);
  EXPECT_EQ(o.min_lr, 1e-7);
  EXPECT_EQ(o.early_stop_patience, 20);
  EXPECT_FALSE(o.pos_weight_auto);
  EXPECT_EQ(o.loss.pos_weight, 12);
  EXPECT_EQ(o.lr, 3e-4);
  EXPECT_EQ(o.seed, 7u);
  EXPECT_TRUE(o.augment_options.rot90);
  EXPECT_EQ(o.augment_options.flip_p, 0.25);
  EXPECT_EQ(o.augment_options.rotate_p, AugmentOptions{}.rotate_p);  // not named: kept
  EXPECT_EQ(o.qat_bits, 8);
  EXPECT_TRUE(o.qat_per_channel);
  EXPECT_EQ(o.input_size, 256);  // not named: the preset's (hc18 here; the caller picks "preset")
}

// What train_config_json writes gives back the same recipe on any preset, JSON text included.
TEST(TrainConfig, TheResolvedConfigRoundTripsOnAnyPreset) {
  TrainOptions o = preset("bbbc010-cpu");
  o.augment_options.rot90 = true;
  o.loss.eps = 1e-4;
  o.beta2 = 0.98;
  o.prune_target = 0.5;
  o.teacher = "/models/teacher.safetensors";
  o.seed = 123456789012345ull;
  o.data_source = {{"dir", "/data/x"}, {"dataset", "folder"}, {"channels", {"w1"}}};
  const nlohmann::json written = nlohmann::json::parse(train_config_json(o).dump(2));
  for (const auto& base : preset_names()) {
    TrainOptions back = preset(base);
    apply_train_config(written, back, "/runs/a/config.json");
    EXPECT_EQ(train_config_json(back).dump(), train_config_json(o).dump()) << "on preset " << base;
  }
}

TEST(TrainConfig, BadFilesNameTheFileAndTheKey) {
  test::TempDir dir;
  const auto fails_with = [&](const std::string& name, const std::string& text, const std::string& needle) {
    write_text(dir.file(name), text);
    TrainOptions o = preset("demo");
    EXPECT_ERROR_CONTAINS(apply_train_config(read_config_file(dir.file(name)), o, dir.file(name)), needle);
  };
  const std::string yaml = "config file '" + dir.file("run.yaml") + "': ";
  fails_with("run.yaml", "lr: 0.001\nlrr: 0.1\n", yaml + "key 'lrr': unknown key (known: ");
  fails_with("run.yaml", "lr: fast\n", yaml + "key 'lr': expected a number, got \"fast\"");
  fails_with("run.yaml", "lr: '0.001'\n", yaml + "key 'lr': expected a number, got \"0.001\"");  // quoted: a string
  fails_with("run.yaml", "plateau_factor: 2\n", yaml + "key 'plateau_factor': expected a number in (0, 1), got 2");
  fails_with("run.yaml", "betas: [0.9, 1]\n", yaml + "key 'betas': expected a number in [0, 1), got 1");
  fails_with("run.yaml", "early_stop_patience: 2.5\n", yaml + "key 'early_stop_patience': expected an integer, got 2.5");
  fails_with("run.yaml", "betas: [0.9]\n", yaml + "key 'betas': expected two numbers [beta1, beta2], got [0.9]");
  fails_with("run.yaml", "qat: {bits: 3}\n", yaml + "key 'qat.bits': expected 0 (off), 2, 4 or 8, got 3");
  fails_with("run.yaml", "qat: {bitz: 8}\n", yaml + "key 'qat.bitz': unknown key (known in 'qat': bits, per_channel)");
  fails_with("run.yaml", "input_size: 100\n", yaml + "key 'input_size': expected a multiple of 32, got 100");
  fails_with("run.yaml", "pos_weight: many\n", yaml + "key 'pos_weight': expected a positive number or \"auto\"");
  fails_with("run.yaml", "lr: 0.1\nlr: 0.2\n", yaml + "line 2: key 'lr' appears twice");
  fails_with("run.yaml", "lr: [0.1\n", yaml + "not valid YAML: line ");
  fails_with("run.yaml", "- lr\n- 0.1\n", yaml + "expected keys and values at the top level, got array");
  fails_with("run.json", "{\"epochs\": 3,}", "config file '" + dir.file("run.json") + "': not valid JSON");
  fails_with("run.json", "{\"epochs\": \"3\"}", "config file '" + dir.file("run.json") + "': key 'epochs': expected an integer, got \"3\"");
  fails_with("run.toml", "lr = 1", "config file '" + dir.file("run.toml") + "': unknown format '.toml' (use .json, .yaml or .yml)");
  EXPECT_ERROR_CONTAINS(read_config_file(dir.file("absent.yaml")), "config file '" + dir.file("absent.yaml") + "': cannot open");
}

// The trainer lowers the rate by the plateau rule on its own validation Dice and stops after
// `early_stop_patience` epochs without a new best: replaying PlateauSchedule over the run's
// history gives exactly the rates it trained with, and where it stopped.
TEST(Train, EarlyStoppingAndThePlateauRuleDriveTheRun) {
  test::TempDir dir;
  TrainOptions o = test::tiny_options(dir.file("run"));
  o.input_size = 32;
  o.epochs = 40;
  o.plateau_patience = 0;  // every epoch without a new best divides the rate by 10
  o.plateau_factor = 0.1;
  o.min_lr = 1e-6;
  o.early_stop_patience = 2;
  const auto r = train_model(test::disc_dataset(12, 32, 3), o);
  ASSERT_LT(r.epochs_run, 40) << "no plateau of 2 epochs in 40: the test needs one";
  EXPECT_EQ(r.stop_reason, "early stopping: no improvement for 2 epochs");
  EXPECT_EQ(r.epochs_run, r.best_epoch + 2);
  PlateauSchedule replay;
  replay.lr = o.lr;
  for (const auto& m : r.history) {
    EXPECT_DOUBLE_EQ(m.lr, replay.lr) << "epoch " << m.epoch;
    replay.observe(m.val_dice, m.epoch, o.plateau_patience, o.plateau_factor, o.min_lr);
  }
  EXPECT_TRUE(replay.should_stop(o.early_stop_patience));
  EXPECT_EQ(replay.best_epoch, r.best_epoch);
  EXPECT_LT(r.history.back().lr, o.lr);  // the rate did fall
}

}  // namespace
}  // namespace leanseg
