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

TEST(Cli, EvalReportHtmlIsSelfContainedWithTheWorstImagesFirst) {
  test::TempDir dir;
  write_case(dir);
  const CliRun r = run_cli("eval --model " + dir.file("m.safetensors") + " --data " + dir.file("data") +
                           " --json --per-image --report " + dir.file("report.html"));
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
  // Each inlined image is a PNG of the image's size.
  const std::regex png("src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"");
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
}

// Debian's chromium renders the page headless; its DOM has the gallery with every image, and
// the sort script runs (the table starts by Dice ascending: one click on "Dice" reverses it).
TEST(Cli, EvalReportHtmlLoadsInHeadlessChromium) {
  const CliRun which = test::run_command("command -v chromium");
  if (which.code != 0) GTEST_SKIP() << "chromium is not installed (apt-get install chromium): the page is not rendered";
  test::TempDir dir;
  write_case(dir);
  CliRun r = run_cli("eval --model " + dir.file("m.safetensors") + " --data " + dir.file("data") + " --report " +
                     dir.file("report.html"));
  ASSERT_EQ(r.code, 0) << r.out;
  // A copy that clicks "Dice" once loaded (descending: the best image first).
  std::string html = read_text(dir.file("report.html"));
  html.replace(html.find("</body>"), 7, "<script>sortTable(1);</script></body>");
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
  r = test::run_command(chromium + dir.file("sorted.html") + " 2>/dev/null");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::regex row("<tr><td>(im\\d)</td><td>([0-9.]+)</td>");
  std::vector<double> dices;
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), row), end; it != end; ++it) dices.push_back(std::stod((*it)[2]));
  ASSERT_EQ(dices.size(), 4u) << r.out.substr(0, 3000);
  EXPECT_TRUE(std::is_sorted(dices.rbegin(), dices.rend())) << "not sorted by Dice, descending";
}

}  // namespace
}  // namespace leanseg
