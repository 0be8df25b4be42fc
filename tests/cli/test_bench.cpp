// `leanseg bench` end to end on a tiny model: every requested row is measured (accuracy, sizes,
// latency, memory) and the table, CSV and plot are written.
#include <fstream>

#include "compress/compress_test_util.h"
#include "leanseg/plot.h"
#include "leanseg/model_file.h"
#include "model_test_util.h"

namespace leanseg {
namespace {

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> fields;
    std::string field;
    bool quoted = false;
    for (char c : line) {
      if (c == '"') quoted = !quoted;
      else if (c == ',' && !quoted) fields.push_back(field), field.clear();
      else field += c;
    }
    fields.push_back(field);
    rows.push_back(fields);
  }
  return rows;
}

TEST(Bench, MeasuresEveryVariantAndWritesTheTable) {
  test::TempDir dir;
  const std::string data = dir.file("data"), model = dir.file("m.safetensors"), out = dir.file("bench");
  test::write_disc_folder(data, 4);
  Preprocessing pre;
  pre.input_height = pre.input_width = 64;
  save_model(model, test::tiny_efficient_unet(), pre);
  const auto r = test::run_cli("bench --data " + data + " --out " + out + " --variants-of " + model +
                               " --quant int8 --prune 0.5 --structured 0.5 --runtime fp32 --runs 3");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto csv = read_csv(out + "/bench.csv");
  ASSERT_EQ(csv.size(), 7u) << "header + fp32, runtime fp32, int8, magnitude, structured, structured runtime";
  const auto& h = csv[0];
  auto col = [&](const std::string& name) { return static_cast<size_t>(std::find(h.begin(), h.end(), name) - h.begin()); };
  auto num = [&](size_t row, const std::string& name) { return std::stod(csv[row][col(name)]); };
  for (size_t i = 1; i < csv.size(); ++i) {
    EXPECT_GE(num(i, "dice"), 0.0) << i;
    EXPECT_GT(num(i, "latency_median_ms"), 0.0) << i;
    EXPECT_GT(num(i, "peak_rss_bytes"), 1e6) << i;
    EXPECT_GT(num(i, "file_bytes"), 0.0) << i;
  }
  EXPECT_EQ(csv[2][col("engine")], "runtime");
  EXPECT_LT(num(3, "file_bytes"), num(1, "file_bytes")) << "int8 weights make a smaller file";
  EXPECT_LT(num(4, "params_nonzero"), num(1, "params_nonzero") * 0.6) << "magnitude 50%";
  EXPECT_EQ(num(4, "flops"), num(1, "flops")) << "zeros do not remove FLOPs";
  EXPECT_LT(num(5, "params"), num(1, "params")) << "structured pruning removes parameters";
  EXPECT_LT(num(5, "flops"), num(1, "flops")) << "... and FLOPs";
  EXPECT_TRUE(std::filesystem::exists(out + "/bench.md"));
  if (gnuplot_available()) EXPECT_TRUE(std::filesystem::exists(out + "/bench.png"));
}

TEST(Bench, BadRequestsFailClearly) {
  test::TempDir dir;
  auto r = test::run_cli("bench --data " + dir.file("d") + " --out " + dir.file("o"));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("give --model FILE and/or --variants-of FILE"), std::string::npos) << r.out;
  r = test::run_cli("bench --data " + dir.file("d") + " --out " + dir.file("o") + " --model " + dir.file("none.safetensors"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("none.safetensors' does not exist"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace leanseg
