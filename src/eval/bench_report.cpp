#include "leanseg/bench_report.h"

#include <cstdio>
#include <map>
#include <sstream>

#include "leanseg/error.h"
#include "leanseg/plot.h"

namespace leanseg {
namespace {

std::string fixed(double v, int digits) {
  if (!std::isfinite(v)) return "–";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string mega(double v, int digits = 2) { return fixed(v / 1e6, digits); }

std::string csv_number(double v) {
  if (!std::isfinite(v)) return "";
  std::ostringstream s;
  s.precision(10);
  s << v;
  return s.str();
}

std::string csv_text(const std::string& t) {
  if (t.find_first_of(",\"\n") == std::string::npos) return t;
  std::string q = "\"";
  for (char c : t) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace

std::string bench_markdown(const std::vector<BenchRow>& rows) {
  std::ostringstream md;
  md << "| model | variant | engine | Dice | IoU | HC MAE (mm) | params (non-zero) | GFLOPs | file (MB) | peak RSS (MB) "
        "| latency median / p90 (ms) | throughput (img/s) |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    md << "| " << r.model << " | " << r.variant << " | " << r.engine << (r.engine == "runtime" || r.precision != "fp32" ? " " + r.precision : "")
       << " | " << fixed(r.dice, 4) << " | " << fixed(r.iou, 4) << " | " << fixed(r.hc_mae_mm, 2) << " | "
       << mega(static_cast<double>(r.params)) << "M (" << mega(static_cast<double>(r.params_nonzero)) << "M) | "
       << fixed(r.flops / 1e9, 2) << " | " << mega(static_cast<double>(r.file_bytes)) << " | "
       << fixed(static_cast<double>(r.peak_rss_bytes) / 1e6, 0) << " | " << fixed(r.latency_median_ms, 1) << " / "
       << fixed(r.latency_p90_ms, 1) << " | " << fixed(r.throughput, 1) << " |\n";
  }
  return md.str();
}

std::string bench_csv(const std::vector<BenchRow>& rows) {
  std::ostringstream csv;
  csv << "model,variant,engine,precision,dice,iou,hc_mae_mm,params,params_nonzero,flops,file_bytes,peak_rss_bytes,"
         "latency_median_ms,latency_p90_ms,throughput\n";
  for (const auto& r : rows)
    csv << csv_text(r.model) << "," << csv_text(r.variant) << "," << r.engine << "," << r.precision << ","
        << csv_number(r.dice) << "," << csv_number(r.iou) << "," << csv_number(r.hc_mae_mm) << "," << r.params << ","
        << r.params_nonzero << "," << csv_number(r.flops) << "," << r.file_bytes << "," << r.peak_rss_bytes << ","
        << csv_number(r.latency_median_ms) << "," << csv_number(r.latency_p90_ms) << "," << csv_number(r.throughput)
        << "\n";
  return csv.str();
}

void bench_plot(const std::vector<BenchRow>& rows, const std::string& png_path, const std::string& title) {
  PlotSpec spec;
  spec.title = title;
  spec.xlabel = "latency, median of batch-1 runs (ms)";
  spec.ylabel = "validation Dice";
  spec.points = true;
  std::map<std::string, size_t> series_of;
  std::vector<std::vector<const BenchRow*>> groups;
  for (const auto& r : rows) {
    if (!std::isfinite(r.dice) || !std::isfinite(r.latency_median_ms)) continue;
    auto [it, added] = series_of.emplace(r.model, groups.size());
    if (added) groups.emplace_back();
    groups[it->second].push_back(&r);
  }
  require(!groups.empty(), "bench plot: no row has both a Dice and a latency");
  for (const auto& [model, i] : series_of) {
    Series s{model, {}, {}};
    for (const BenchRow* r : groups[i]) s.x.push_back(r->latency_median_ms), s.y.push_back(r->dice);
    spec.series.push_back(s);
  }
  // Labels and sizes follow the series' order (the map's, by model name).
  for (const auto& [model, i] : series_of)
    for (const BenchRow* r : groups[i]) {
      spec.point_labels.push_back(r->variant + (r->engine == "runtime" ? " [rt " + r->precision + "]" : r->precision != "fp32" ? " [LibTorch " + r->precision + "]" : ""));
      spec.point_sizes.push_back(static_cast<double>(r->file_bytes));
    }
  plot_png(spec, png_path);
}

}  // namespace leanseg
