// report.html of `leanseg eval`: one file a user opens in any browser (or mails) with the scores
// and the worst cases to look at. Everything is inline (CSS, a few lines of script for sorting,
// PNGs as data: URLs), so the page works offline and from any folder.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <functional>
#include <iostream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "leanseg/error.h"
#include "leanseg/evaluate.h"
#include "leanseg/fs.h"
#include "leanseg/plot.h"
#include "leanseg/prediction.h"

namespace leanseg {
namespace {

std::string base64(const std::vector<unsigned char>& bytes) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t n = (uint32_t(bytes[i]) << 16) | (i + 1 < bytes.size() ? uint32_t(bytes[i + 1]) << 8 : 0) |
                       (i + 2 < bytes.size() ? uint32_t(bytes[i + 2]) : 0);
    out += table[(n >> 18) & 63];
    out += table[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? table[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? table[n & 63] : '=';
  }
  return out;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string fixed(double v, int digits) {
  if (!std::isfinite(v)) return "";
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(digits);
  s << v;
  return s.str();
}

// The image in grey with the reference outline in blue and the prediction's in green, at most
// 480 px wide (a gallery of HC18-sized images stays a few MB).
cv::Mat overlay_for_report(const cv::Mat& image01, const cv::Mat& pred, const cv::Mat& truth) {
  cv::Mat grey, bgr;
  cv::extractChannel(image01, grey, 0);
  grey.convertTo(grey, CV_8U, 255.0);
  cv::cvtColor(grey, bgr, cv::COLOR_GRAY2BGR);
  std::vector<std::vector<cv::Point>> p, t;
  cv::findContours(pred.clone(), p, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
  cv::findContours(truth.clone(), t, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_NONE);
  const int thickness = std::max(1, image01.cols / 300);
  cv::drawContours(bgr, t, -1, cv::Scalar(255, 128, 0), thickness);
  cv::drawContours(bgr, p, -1, cv::Scalar(0, 255, 0), thickness);
  if (bgr.cols > 480) cv::resize(bgr, bgr, cv::Size(480, bgr.rows * 480 / bgr.cols), 0, 0, cv::INTER_AREA);
  return bgr;
}

const char* kStyle = R"(body{font-family:sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#eee;cursor:pointer}td:first-child,th:first-child{text-align:left}
#gallery{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figcaption{font-size:90%}
.key span{display:inline-block;width:1em;height:.6em;margin:0 .3em}
)";

// Click a header: sort by that column (numbers as numbers), again to reverse.
const char* kSortScript = R"(<script>
function sortTable(col){const t=document.getElementById('images'),b=t.tBodies[0];
const rows=Array.from(b.rows),asc=t.dataset.col==col&&t.dataset.dir=='asc'?false:true;
rows.sort((x,y)=>{const a=x.cells[col].dataset.v??x.cells[col].textContent,c=y.cells[col].dataset.v??y.cells[col].textContent;
const na=parseFloat(a),nc=parseFloat(c);const r=isNaN(na)||isNaN(nc)?a.localeCompare(c):na-nc;return asc?r:-r;});
rows.forEach(r=>b.appendChild(r));t.dataset.col=col;t.dataset.dir=asc?'asc':'desc';}
</script>
)";

// A gnuplot PNG (plot.h, the trainer's curves.png renderer) as the bytes of a data: URL.
std::string plot_base64(const PlotSpec& spec) {
  static std::atomic<int> counter{0};
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("leanseg_report_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".png"))
                               .string();
  plot_png(spec, path);
  std::vector<unsigned char> bytes;
  try {
    bytes = read_file_bytes(path);
  } catch (...) {
    std::filesystem::remove(path);
    throw;
  }
  std::filesystem::remove(path);
  return base64(bytes);
}

PlotSpec dice_distribution_plot(const EvalReport& rep) {
  PlotSpec spec;
  spec.title = "Dice per image, sorted (" + std::to_string(rep.images.size()) + " images)";
  spec.xlabel = "fraction of images";
  spec.ylabel = "Dice";
  spec.width = 640, spec.height = 400;
  std::vector<double> dice;
  for (const ImageScore& s : rep.images) dice.push_back(s.dice);
  std::sort(dice.begin(), dice.end());
  Series s{"Dice", {}, {}};
  for (size_t i = 0; i < dice.size(); ++i) {
    s.x.push_back(dice.size() == 1 ? 0.0 : static_cast<double>(i) / (dice.size() - 1));
    s.y.push_back(dice[i]);
  }
  spec.series = {s};
  return spec;
}

// Loss and validation Dice per epoch from a run's metrics.json (written by the trainer).
PlotSpec training_curves_plot(const std::string& metrics_path) {
  const auto bytes = read_file_bytes(metrics_path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const std::exception& e) {
    throw Error("training metrics '" + metrics_path + "' is not valid JSON: " + e.what());
  }
  require(j.is_array() && !j.empty(), "training metrics '" + metrics_path + "' holds no epochs");
  Series tl{"train loss", {}, {}}, vl{"val loss", {}, {}}, vd{"val Dice", {}, {}};
  for (const auto& e : j) {
    require(e.is_object() && e.contains("epoch") && e["epoch"].is_number(),
            "training metrics '" + metrics_path + "': an entry has no epoch number");
    auto value = [&](const char* key) { return e.contains(key) && e[key].is_number() ? e[key].get<double>() : NAN; };
    for (Series* s : {&tl, &vl, &vd}) s->x.push_back(value("epoch"));
    tl.y.push_back(value("train_loss")), vl.y.push_back(value("val_loss")), vd.y.push_back(value("val_dice"));
  }
  PlotSpec spec;
  spec.title = "training curves (" + std::to_string(j.size()) + (j.size() == 1 ? " epoch)" : " epochs)");
  spec.xlabel = "epoch";
  spec.ylabel = "loss / Dice";
  spec.width = 640, spec.height = 400;
  spec.series = {tl, vl, vd};
  return spec;
}

void curves_section(std::ostringstream& h, const EvalReport& rep, const std::string& training_metrics) {
  h << "<section id=\"curves\"><h2>Curves</h2>\n";
  if (!gnuplot_available()) {
    h << "<p>gnuplot is not installed: no curves (apt-get install gnuplot-nox).</p></section>\n";
    return;
  }
  std::vector<std::pair<std::string, std::function<PlotSpec()>>> plots;
  if (!rep.images.empty()) plots.emplace_back("dice-distribution", [&] { return dice_distribution_plot(rep); });
  if (!training_metrics.empty()) plots.emplace_back("training-curves", [&] { return training_curves_plot(training_metrics); });
  for (const auto& [id, make] : plots) {
    try {
      const PlotSpec spec = make();
      h << "<figure class=\"curve\" id=\"" << id << "\"><img alt=\"" << escape(spec.title)
        << "\" src=\"data:image/png;base64," << plot_base64(spec) << "\"><figcaption>" << escape(spec.title)
        << "</figcaption></figure>\n";
    } catch (const Error& e) {  // the scores are still worth the page
      std::cerr << "leanseg: warning: report: " << e.what() << "\n";
      h << "<p>" << escape(id) << ": not drawn (" << escape(e.what()) << ")</p>\n";
    }
  }
  h << "</section>\n";
}

}  // namespace

std::string evaluation_report_html(const EvalReport& rep, const Dataset& data, const std::vector<size_t>& indices,
                                   const Predictor& predictor, const std::string& title, int gallery_size,
                                   const std::string& training_metrics) {
  std::vector<size_t> order(rep.images.size());  // worst Dice first
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rep.images[a].dice < rep.images[b].dice; });
  const bool hc = std::isfinite(rep.hc_mae_mm);
  const std::string unit = hc ? "mm" : "px";

  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << escape(title) << "</title><style>"
    << kStyle << "</style>" << kSortScript << "</head><body>\n<h1>" << escape(title) << "</h1>\n";
  h << "<section id=\"summary\"><h2>Summary</h2><table>\n";
  auto row = [&](const std::string& k, const std::string& v) { h << "<tr><td>" << k << "</td><td>" << v << "</td></tr>\n"; };
  row("images", std::to_string(rep.n_images));
  row("Dice (mean over images)", fixed(rep.dice, 4));
  row("IoU (mean over images)", fixed(rep.iou, 4));
  row("Dice / IoU (all pixels)", fixed(rep.dice_pixels, 4) + " / " + fixed(rep.iou_pixels, 4));
  if (hc) row("HC abs. error mean / median (mm)", fixed(rep.hc_mae_mm, 2) + " / " + fixed(rep.hc_median_mm, 2));
  row("Hausdorff / HD95 / ASSD (" + unit + ", means)", fixed(rep.hd_mm, 2) + " / " + fixed(rep.hd95_mm, 2) + " / " + fixed(rep.assd_mm, 2));
  row("latency per image median / p90 (ms)", fixed(rep.latency_median_ms, 1) + " / " + fixed(rep.latency_p90_ms, 1));
  row("test-time mirroring, post-processing", escape(rep.tta) + ", " + escape(rep.postprocess));
  h << "</table></section>\n";
  curves_section(h, rep, training_metrics);

  h << "<section><h2>Per image</h2><p>Click a column to sort.</p><table id=\"images\" data-col=\"1\" data-dir=\"asc\"><thead><tr>";
  std::vector<std::string> cols = {"image", "Dice", "IoU", "HD95 (" + unit + ")", "ASSD (" + unit + ")"};
  if (hc) cols.insert(cols.end(), {"HC pred (mm)", "HC ref (mm)", "HC error (mm)"});
  cols.push_back("latency (ms)");
  for (size_t c = 0; c < cols.size(); ++c) h << "<th onclick=\"sortTable(" << c << ")\">" << escape(cols[c]) << "</th>";
  h << "</tr></thead><tbody>\n";
  for (size_t k : order) {
    const ImageScore& s = rep.images[k];
    h << "<tr><td>" << escape(s.id) << "</td><td>" << fixed(s.dice, 4) << "</td><td>" << fixed(s.iou, 4) << "</td><td>"
      << fixed(s.hd95, 2) << "</td><td>" << fixed(s.assd, 2) << "</td>";
    if (hc) h << "<td>" << fixed(s.hc_pred_mm, 1) << "</td><td>" << fixed(s.hc_ref_mm, 1) << "</td><td>" << fixed(s.hc_abs_err_mm, 2) << "</td>";
    h << "<td>" << fixed(s.latency_ms, 1) << "</td></tr>\n";
  }
  h << "</tbody></table></section>\n";

  h << "<section><h2>Worst cases</h2><p class=\"key\">Lowest Dice first. Outlines: <span style=\"background:#0080ff\"></span>"
       "reference <span style=\"background:#00ff00\"></span>prediction.</p>\n<div id=\"gallery\">\n";
  for (size_t n = 0; n < order.size() && static_cast<int>(n) < gallery_size; ++n) {
    const ImageScore& s = rep.images[order[n]];
    const Sample& sample = data.samples[indices.empty() ? order[n] : indices[order[n]]];
    const cv::Mat pred = postprocess_mask(
        threshold_mask(predict_probability_with(predictor.pre, predictor.size_divisor, sample.image, predictor.run),
                       predictor.pre.threshold),
        predictor.postprocess);
    const cv::Mat overlay = overlay_for_report(sample.image, pred, sample.mask);
    h << "<figure class=\"overlay\"><img alt=\"" << escape(s.id) << "\" src=\"data:image/png;base64,"
      << base64(encode_png(overlay, s.id + " overlay")) << "\"><figcaption>" << escape(s.id) << ": Dice " << fixed(s.dice, 4)
      << "</figcaption></figure>\n";
  }
  h << "</div></section>\n</body></html>\n";
  return h.str();
}

}  // namespace leanseg
