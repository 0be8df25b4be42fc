// plot_png drives the real gnuplot; the error paths use a fake gnuplot put first on PATH.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "leanseg/error.h"
#include "leanseg/fs.h"
#include "leanseg/plot.h"
#include "test_util.h"

namespace leanseg {
namespace {

uint32_t big_endian_u32(const std::vector<unsigned char>& b, size_t at) {
  return (uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) | (uint32_t(b[at + 2]) << 8) | uint32_t(b[at + 3]);
}

// Checks the PNG signature and that the IHDR chunk has the requested size.
void expect_png(const std::string& path, int width, int height) {
  const std::vector<unsigned char> bytes = read_file_bytes(path);
  ASSERT_GT(bytes.size(), 1000u) << path;
  const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  EXPECT_TRUE(std::equal(signature, signature + 8, bytes.begin())) << path << " is not a PNG";
  EXPECT_EQ(std::string(bytes.begin() + 12, bytes.begin() + 16), "IHDR");
  EXPECT_EQ(big_endian_u32(bytes, 16), uint32_t(width));
  EXPECT_EQ(big_endian_u32(bytes, 20), uint32_t(height));
}

PlotSpec training_curves() {
  PlotSpec spec;
  spec.title = "training curves (val_dice, it's fine)";  // quote and underscore in a title
  spec.xlabel = "epoch";
  spec.ylabel = "loss / Dice";
  spec.y2label = "learning rate";
  Series loss{"train loss", {}, {}}, dice{"val Dice", {}, {}}, lr{"lr", {}, {}, "y2"};
  for (int epoch = 1; epoch <= 20; ++epoch) {
    for (Series* s : {&loss, &dice, &lr}) s->x.push_back(epoch);
    loss.y.push_back(1.0 / epoch);
    dice.y.push_back(1.0 - 0.5 / epoch);
    lr.y.push_back(epoch < 10 ? 1e-3 : 1e-4);
  }
  loss.y[3] = std::nan("");  // a NaN loss must be skipped, not break the plot
  spec.series = {loss, dice, lr};
  spec.width = 640;
  spec.height = 400;
  return spec;
}

PlotSpec comparison_scatter() {
  PlotSpec spec;
  spec.title = "Dice vs latency";
  spec.xlabel = "latency (ms)";
  spec.ylabel = "Dice";
  spec.points = true;
  spec.series = {{"fp32", {12.0, 30.5, 55.0}, {0.95, 0.97, 0.975}}, {"int8", {6.0, 14.0}, {0.94, 0.965}}};
  spec.point_labels = {"M1", "M3 'wide'", "M5", "M1 int8", "M3 int8"};
  spec.point_sizes = {2.1, 8.4, 30.0, 0.6, 2.2};  // MB
  return spec;
}

TEST(Plot, LinePlotWithSecondAxisWritesPng) {
  if (!gnuplot_available()) GTEST_SKIP() << "gnuplot not on PATH";
  test::TempDir dir;
  const std::string png = dir.file("curves.png");
  plot_png(training_curves(), png);
  expect_png(png, 640, 400);
  // Only the PNG is left behind: no temp files next to it.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path), std::filesystem::directory_iterator()), 1);
}

TEST(Plot, ScatterWithLabelsAndSizesWritesPng) {
  if (!gnuplot_available()) GTEST_SKIP() << "gnuplot not on PATH";
  test::TempDir dir;
  const std::string png = dir.file("comparison.png");
  plot_png(comparison_scatter(), png);
  expect_png(png, 1000, 600);
}

TEST(Plot, ReplacesAnExistingFile) {
  if (!gnuplot_available()) GTEST_SKIP() << "gnuplot not on PATH";
  test::TempDir dir;
  const std::string png = dir.file("curves.png");
  std::ofstream(png) << "old";
  plot_png(training_curves(), png);
  expect_png(png, 640, 400);
}

TEST(Plot, RejectsInconsistentSpecs) {
  test::TempDir dir;
  PlotSpec labels = comparison_scatter();
  labels.point_labels.pop_back();
  EXPECT_ERROR_CONTAINS(plot_png(labels, dir.file("a.png")), "4 point labels for 5 points");
  PlotSpec ragged = training_curves();
  ragged.series[1].y.pop_back();
  EXPECT_ERROR_CONTAINS(plot_png(ragged, dir.file("a.png")), "val Dice");
  PlotSpec axis = training_curves();
  axis.series[0].axis = "y3";
  EXPECT_ERROR_CONTAINS(plot_png(axis, dir.file("a.png")), "y3");
  EXPECT_ERROR_CONTAINS(plot_png(PlotSpec{}, dir.file("a.png")), "no series");
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.png")));
}

TEST(Plot, MissingOutputDirectoryIsAnError) {
  if (!gnuplot_available()) GTEST_SKIP() << "gnuplot not on PATH";
  test::TempDir dir;
  EXPECT_ERROR_CONTAINS(plot_png(training_curves(), dir.file("nowhere/curves.png")), "nowhere");
}

// Puts `dir` alone on PATH for the lifetime of the object.
struct PathOverride {
  std::string saved;
  explicit PathOverride(const std::string& dir) {
    const char* old = std::getenv("PATH");
    saved = old ? old : "";
    ::setenv("PATH", dir.c_str(), 1);
  }
  ~PathOverride() { ::setenv("PATH", saved.c_str(), 1); }
};

TEST(Plot, MissingGnuplotIsAnError) {
  test::TempDir empty_dir;
  PathOverride path(empty_dir.path.string());
  EXPECT_FALSE(gnuplot_available());
  EXPECT_ERROR_CONTAINS(plot_png(training_curves(), empty_dir.file("curves.png")), "gnuplot was not found");
}

TEST(Plot, GnuplotFailureReportsItsStderr) {
  test::TempDir dir;
  const std::string fake = dir.file("gnuplot");
  std::ofstream(fake) << "#!/bin/sh\necho 'line 7: undefined variable: oops' >&2\nexit 1\n";
  ::chmod(fake.c_str(), 0755);
  PathOverride path(dir.path.string());
  ASSERT_TRUE(gnuplot_available());
  EXPECT_ERROR_CONTAINS(plot_png(training_curves(), dir.file("curves.png")), "undefined variable: oops");
  EXPECT_FALSE(std::filesystem::exists(dir.file("curves.png")));
}

}  // namespace
}  // namespace leanseg
