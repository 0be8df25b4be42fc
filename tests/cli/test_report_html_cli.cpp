// `leanseg eval --report report.html`: one self-contained page (no other file, no network) with
// the summary, the per-image table and the overlay gallery worst Dice first; a headless
// browser (Debian's chromium, when installed) loads it and finds the gallery.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <regex>

#include "leanseg/fs.h"
#include "leanseg/model_file.h"
#include "leanseg/plot.h"
#include "model_test_util.h"

namespace leanseg {
namespace {

using test::CliRun;
CliRun run_cli(const std::string& args) { return test::run_cli(args, 2); }

std::string read_text(const std::string& path) {
  const auto b = read_file_bytes(path);
  return std::string(b.begin(), b.end());
}

std::vector<unsigned char> unbase64(const std::string& s) {
  std::vector<unsigned char> out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char* p = std::strchr(table, c);
    if (c == '=' || !p) break;
    acc = (acc << 6) | static_cast<uint32_t>(p - table);
    if ((bits += 6) >= 8) out.push_back(static_cast<unsigned char>((acc >> (bits -= 8)) & 0xff));
  }
  return out;
}

// DIR/data: four 90x120 images with a disc each; DIR/m.safetensors: an untrained tiny model.
void write_case(const test::TempDir& dir) {
  std::filesystem::create_directories(dir.path / "data/images");
  std::filesystem::create_directories(dir.path / "data/masks");
  for (int i = 0; i < 4; ++i) {
    cv::Mat img(90, 120, CV_8UC1, cv::Scalar(30)), mask(90, 120, CV_8UC1, cv::Scalar(0));
    cv::circle(img, {60, 45}, 12 + 6 * i, cv::Scalar(220), cv::FILLED);
    cv::circle(mask, {60, 45}, 12 + 6 * i, cv::Scalar(255), cv::FILLED);
    cv::imwrite(dir.file("data/images/im" + std::to_string(i) + ".png"), img);
    cv::imwrite(dir.file("data/masks/im" + std::to_string(i) + ".png"), mask);
  }
  ModelConfig cfg;
  cfg.arch = "efficient-unet";
  cfg.options = {{"channels", {8, 8, 16, 16, 32, 32}}, {"reduction", 2}, {"attention_heads", 2}};
  Preprocessing pre;
  pre.input_height = pre.input_width = 64;
  auto model = create_model(cfg);
  test::randomize_weights(*model, 5);
  save_model(dir.file("m.safetensors"), model, pre);
}

// A run's metrics.json (as the trainer writes it) beside DIR/m.safetensors: three epochs.
void write_metrics(const test::TempDir& dir) {
  std::ofstream(dir.file("metrics.json")) << R"([
  {"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "val_dice": 0.3, "val_iou": 0.2, "lr": 0.001, "seconds": 1},
  {"epoch": 2, "train_loss": 0.6, "val_loss": 0.5, "val_dice": 0.6, "val_iou": 0.4, "lr": 0.001, "seconds": 2},
  {"epoch": 3, "train_loss": 0.4, "val_loss": 0.45, "val_dice": 0.7, "val_iou": 0.5, "lr": 0.0005, "seconds": 3}
])";
}

// `eval` of DIR/m.safetensors on DIR/data writing DIR/report.html (`extra`: more options).
CliRun eval_with_report(const test::TempDir& dir, const std::string& extra = "") {
  return run_cli("eval --model " + dir.file("m.safetensors") + " --data " + dir.file("data") + extra + " --report " +
                 dir.file("report.html"));
}

// The PNG inlined in the <figure id="ID"> of the page; empty when there is none. (Found with
// find, not std::regex: libstdc++'s regex recurses per character of a 30 kB base64 run.)
cv::Mat curve_png(const std::string& html, const std::string& id) {
  const std::string head = "<figure class=\"curve\" id=\"" + id + "\"><img alt=\"";
  const size_t figure = html.find(head);
  if (figure == std::string::npos) return {};
  const std::string data = "src=\"data:image/png;base64,";
  const size_t begin = html.find(data, figure);
  if (begin == std::string::npos) return {};
  const size_t end = html.find('"', begin + data.size());
  return cv::imdecode(unbase64(html.substr(begin + data.size(), end - begin - data.size())), cv::IMREAD_COLOR);
}

TEST(Cli, EvalReportHtmlIsSelfContainedWithTheWorstImagesFirst) {
  test::TempDir dir;
  write_case(dir);
  const CliRun r = eval_with_report(dir, " --json --per-image");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  std::vector<std::pair<double, std::string>> by_dice;
  for (const auto& im : j["images"]) by_dice.emplace_back(im["dice"].get<double>(), im["id"].get<std::string>());
  std::stable_sort(by_dice.begin(), by_dice.end(), [](const auto& a, const auto& b) { return a.first < b.first; });

  const std::string html = read_text(dir.file("report.html"));
  EXPECT_NE(html.find("<div id=\"gallery\">"), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos) << "the page must not fetch anything";
  EXPECT_EQ(html.find("src=\"data/"), std::string::npos);
  // Gallery captions in the order of the JSON's Dice, lowest first.
  const std::regex caption("<figcaption>([^:<]+): Dice");
  std::vector<std::string> ids;
  for (std::sregex_iterator it(html.begin(), html.end(), caption), end; it != end; ++it) ids.push_back((*it)[1]);
  ASSERT_EQ(ids.size(), 4u);
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], by_dice[i].second) << i;
  // Each gallery image is a PNG of the image's size.
  const std::regex png("<figure class=\"overlay\"><img alt=\"[^\"]*\" src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"");
  int images = 0;
  for (std::sregex_iterator it(html.begin(), html.end(), png), end; it != end; ++it, ++images) {
    const cv::Mat m = cv::imdecode(unbase64((*it)[1]), cv::IMREAD_COLOR);
    ASSERT_FALSE(m.empty());
    EXPECT_EQ(m.size(), cv::Size(120, 90));
  }
  EXPECT_EQ(images, 4);
  // The per-image table lists every image, sortable from its headers.
  EXPECT_NE(html.find("<table id=\"images\""), std::string::npos);
  EXPECT_NE(html.find("onclick=\"sortTable(1)\">Dice</th>"), std::string::npos);
  for (const auto& [d, id] : by_dice) EXPECT_NE(html.find("<tr><td>" + id + "</td>"), std::string::npos) << id;
  // The per-image Dice distribution, drawn by gnuplot; no training curves without a run's metrics.
  if (!gnuplot_available()) GTEST_SKIP() << "gnuplot is not installed: the report has no curves";
  EXPECT_EQ(curve_png(html, "dice-distribution").size(), cv::Size(640, 400));
  EXPECT_TRUE(curve_png(html, "training-curves").empty());
}

// A model in a run folder (its metrics.json beside it): the report draws the training curves;
// a broken metrics.json leaves a note instead of failing the evaluation.
TEST(Cli, EvalReportHtmlDrawsTheRunsTrainingCurves) {
  if (!gnuplot_available()) GTEST_SKIP() << "gnuplot is not installed: the report has no curves";
  test::TempDir dir;
  write_case(dir);
  write_metrics(dir);
  CliRun r = eval_with_report(dir);
  ASSERT_EQ(r.code, 0) << r.out;
  std::string html = read_text(dir.file("report.html"));
  EXPECT_EQ(curve_png(html, "training-curves").size(), cv::Size(640, 400));
  EXPECT_NE(html.find("<figcaption>training curves (3 epochs)</figcaption>"), std::string::npos);
  std::ofstream(dir.file("metrics.json")) << "[{\"epoch\": ";
  r = eval_with_report(dir);
  ASSERT_EQ(r.code, 0) << r.out;
  html = read_text(dir.file("report.html"));
  EXPECT_TRUE(curve_png(html, "training-curves").empty());
  EXPECT_NE(html.find("training-curves: not drawn (training metrics '" + dir.file("metrics.json") + "' is not valid JSON"),
            std::string::npos);
  EXPECT_NE(r.out.find("leanseg: warning: report: training metrics '" + dir.file("metrics.json")), std::string::npos) << r.out;
}

// Debian's chromium renders the page headless; its DOM has the gallery with every image, and
// the sort script runs (the table starts by Dice ascending: one click on "Dice" reverses it).
TEST(Cli, EvalReportHtmlLoadsInHeadlessChromium) {
  const CliRun which = test::run_command("command -v chromium");
  if (which.code != 0) GTEST_SKIP() << "chromium is not installed (apt-get install chromium): the page is not rendered";
  test::TempDir dir;
  write_case(dir);
  write_metrics(dir);
  CliRun r = eval_with_report(dir);
  ASSERT_EQ(r.code, 0) << r.out;
  // A copy that clicks "Dice" once loaded (descending: the best image first).
  std::string html = read_text(dir.file("report.html"));
  // It also records, once loaded, the width the browser decoded each curve PNG to (0: not decoded).
  html.replace(html.find("</body>"), 7,
               "<script>sortTable(1);window.addEventListener('load',()=>document.body.setAttribute('data-curve-widths',"
               "Array.from(document.querySelectorAll('figure.curve img')).map(i=>i.naturalWidth).join(',')));"
               "</script></body>");
  std::ofstream(dir.file("sorted.html")) << html;
  const std::string chromium = "timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir=" +
                               dir.file("profile") + " --dump-dom file://";
  r = test::run_command(chromium + dir.file("report.html") + " 2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.out;
  const size_t gallery = r.out.find("<div id=\"gallery\">");
  ASSERT_NE(gallery, std::string::npos) << r.out.substr(0, 2000);
  size_t figures = 0;
  for (size_t at = gallery; (at = r.out.find("<figure class=\"overlay\">", at)) != std::string::npos; ++at) ++figures;
  EXPECT_EQ(figures, 4u);
  // The curves: the Dice distribution and the run's training curves.
  if (gnuplot_available()) {
    EXPECT_NE(r.out.find("<figure class=\"curve\" id=\"dice-distribution\"><img"), std::string::npos);
    EXPECT_NE(r.out.find("<figure class=\"curve\" id=\"training-curves\"><img"), std::string::npos);
  }
  r = test::run_command(chromium + dir.file("sorted.html") + " 2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::regex row("<tr><td>(im\\d)</td><td>([0-9.]+)</td>");
  std::vector<double> dices;
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), row), end; it != end; ++it) dices.push_back(std::stod((*it)[2]));
  ASSERT_EQ(dices.size(), 4u) << r.out.substr(0, 3000);
  EXPECT_TRUE(std::is_sorted(dices.rbegin(), dices.rend())) << "not sorted by Dice, descending";
  if (gnuplot_available())
    EXPECT_NE(r.out.find("data-curve-widths=\"640,640\""), std::string::npos) << r.out.substr(0, 600);
}

}  // namespace
}  // namespace leanseg
