// The comparison table's formats: exact CSV columns, NaN as empty/"–", quoting, Markdown rows.
#include <gtest/gtest.h>

#include "leanseg/bench_report.h"
#include "leanseg/error.h"
#include "leanseg/plot.h"
#include "test_util.h"

namespace leanseg {
namespace {

std::vector<BenchRow> rows() {
  BenchRow a;
  a.model = "M1 mobilenet-aspp-se-unet", a.variant = "fp32", a.engine = "LibTorch";
  a.dice = 0.9723, a.iou = 0.9467, a.hc_mae_mm = 2.26, a.params = 10012421, a.params_nonzero = 9946167, a.flops = 3.43e9;
  a.file_bytes = 40250000, a.peak_rss_bytes = 401000000, a.latency_median_ms = 50.5, a.latency_p90_ms = 55.25, a.throughput = 19.8;
  BenchRow b = a;
  b.variant = "magnitude 0.5, then int8", b.engine = "runtime", b.precision = "int8", b.hc_mae_mm = NAN;
  return {a, b};
}

TEST(BenchReport, CsvHasOneLinePerRowWithExactColumns) {
  const std::string csv = bench_csv(rows());
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "model,variant,engine,precision,dice,iou,hc_mae_mm,params,params_nonzero,flops,file_bytes,peak_rss_bytes,"
            "latency_median_ms,latency_p90_ms,throughput");
  EXPECT_NE(csv.find("\nM1 mobilenet-aspp-se-unet,fp32,LibTorch,fp32,0.9723,0.9467,2.26,10012421,9946167,3430000000,40250000,"
                     "401000000,50.5,55.25,19.8\n"),
            std::string::npos)
      << csv;
  // A comma in a field is quoted; NaN is an empty field.
  EXPECT_NE(csv.find(",\"magnitude 0.5, then int8\",runtime,int8,0.9723,0.9467,,10012421"), std::string::npos) << csv;
}

TEST(BenchReport, MarkdownRoundsForReading) {
  const std::string md = bench_markdown(rows());
  EXPECT_NE(md.find("| M1 mobilenet-aspp-se-unet | fp32 | LibTorch | 0.9723 | 0.9467 | 2.26 | 10.01M (9.95M) | 3.43 | 40.25 | 401 | 50.5 / 55.2 | 19.8 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| runtime int8 | 0.9723 | 0.9467 | – |"), std::string::npos) << md;
}

TEST(BenchReport, PlotNeedsRowsWithDiceAndLatency) {
  auto r = rows();
  for (auto& row : r) row.latency_median_ms = NAN;
  EXPECT_ERROR_CONTAINS(bench_plot(r, "/tmp/never.png", "t"), "no row has both a Dice and a latency");
  if (!gnuplot_available()) GTEST_SKIP() << "gnuplot not installed";
  test::TempDir dir;
  bench_plot(rows(), dir.file("b.png"), "Dice vs latency");
  EXPECT_GT(std::filesystem::file_size(dir.file("b.png")), 1000u);
}

}  // namespace
}  // namespace leanseg
