#include "leanseg/plot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "leanseg/error.h"
#include "leanseg/fs.h"
#include "leanseg/process.h"

namespace leanseg {
namespace fs = std::filesystem;

namespace {

// A private directory for gnuplot's input and output, removed on scope exit.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    std::string pattern = (fs::temp_directory_path() / "leanseg_plot_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw Error("plot: cannot create a temporary directory '" + pattern + "': " + std::strerror(errno));
    path = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

// A gnuplot single-quoted string: '' stands for a quote, and a line break would end the command.
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += "''";
    else if (c == '\n' || c == '\r' || c == '\t') out += ' ';
    else out += c;
  }
  return out + "'";
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

size_t point_count(const PlotSpec& spec) {
  size_t n = 0;
  for (const Series& s : spec.series) n += s.x.size();
  return n;
}

void validate(const PlotSpec& spec, const std::string& png_path) {
  const std::string where = "plot '" + png_path + "': ";
  require(!spec.series.empty(), where + "no series to plot");
  require(spec.width > 0 && spec.height > 0 && spec.width <= 20000 && spec.height <= 20000,
          where + "size " + std::to_string(spec.width) + "x" + std::to_string(spec.height) + " is out of range");
  for (const Series& s : spec.series) {
    require(s.x.size() == s.y.size(), where + "series '" + s.title + "' has " + std::to_string(s.x.size()) +
                                          " x values but " + std::to_string(s.y.size()) + " y values");
    require(!s.x.empty(), where + "series '" + s.title + "' has no points");
    require(s.axis == "y1" || s.axis == "y2", where + "series '" + s.title + "' has axis '" + s.axis +
                                                   "'; expected 'y1' or 'y2'");
  }
  const size_t n = point_count(spec);
  require(spec.point_labels.empty() || spec.point_labels.size() == n,
          where + std::to_string(spec.point_labels.size()) + " point labels for " + std::to_string(n) + " points");
  require(spec.point_sizes.empty() || spec.point_sizes.size() == n,
          where + std::to_string(spec.point_sizes.size()) + " point sizes for " + std::to_string(n) + " points");
  for (double size : spec.point_sizes)
    require(std::isfinite(size) && size >= 0, where + "point size " + number(size) + " is not a finite value >= 0");
}

// gnuplot marker scale per point: the marker *area* follows the value, the largest gets 5.
std::vector<double> marker_scales(const std::vector<double>& sizes) {
  const double largest = sizes.empty() ? 0.0 : *std::max_element(sizes.begin(), sizes.end());
  std::vector<double> scales;
  for (double s : sizes) scales.push_back(largest > 0 ? std::max(0.5, 5.0 * std::sqrt(s / largest)) : 1.5);
  return scales;
}

// One block per series ("x y [scale]"), blocks separated by two blank lines for `index`.
// Non-finite values become '?', gnuplot's missing-data marker, so a NaN loss is skipped
// instead of failing the plot.
void write_data(const PlotSpec& spec, const std::string& path) {
  const std::vector<double> scales = marker_scales(spec.point_sizes);
  std::ofstream out(path);
  size_t k = 0;
  auto value = [](double v) { return std::isfinite(v) ? number(v) : std::string("?"); };
  for (const Series& s : spec.series) {
    for (size_t i = 0; i < s.x.size(); ++i, ++k) {
      out << value(s.x[i]) << ' ' << value(s.y[i]);
      if (!scales.empty()) out << ' ' << number(scales[k]);
      out << '\n';
    }
    out << "\n\n";
  }
  if (!out) throw Error("plot: cannot write gnuplot data file '" + path + "'");
}

std::string script_text(const PlotSpec& spec, const std::string& data_path, const std::string& png_out) {
  std::ostringstream g;
  g << "set terminal pngcairo noenhanced size " << spec.width << "," << spec.height << "\n"
    << "set output " << quoted(png_out) << "\n"
    << "set datafile missing '?'\n"
    << "set title " << quoted(spec.title) << "\n"
    << "set xlabel " << quoted(spec.xlabel) << "\n"
    << "set ylabel " << quoted(spec.ylabel) << "\n"
    << "set grid\nset key outside top center horizontal\n";
  const bool has_y2 = std::any_of(spec.series.begin(), spec.series.end(), [](const Series& s) { return s.axis == "y2"; });
  if (has_y2) g << "set y2label " << quoted(spec.y2label) << "\nset ytics nomirror\nset y2tics\n";
  // Room around scattered points so markers and their labels are not cut at the frame.
  if (spec.points) g << "set offsets graph 0.08, graph 0.2, graph 0.1, graph 0.1\n";
  size_t k = 0;
  for (const Series& s : spec.series) {
    const std::string y_system = s.axis == "y2" ? "second " : "first ";
    for (size_t i = 0; i < s.x.size(); ++i, ++k)
      if (!spec.point_labels.empty() && std::isfinite(s.x[i]) && std::isfinite(s.y[i]))
        g << "set label " << (k + 1) << " " << quoted(spec.point_labels[k]) << " at first " << number(s.x[i]) << ", "
          << y_system << number(s.y[i]) << " offset char 1.2,0.6 front\n";
  }
  g << "plot ";
  for (size_t i = 0; i < spec.series.size(); ++i) {
    const Series& s = spec.series[i];
    g << (i ? ", \\\n     " : "") << quoted(data_path) << " index " << i;
    if (!spec.points) g << " using 1:2 with linespoints pt 7 ps 0.6 lw 2";
    else if (!spec.point_sizes.empty()) g << " using 1:2:3 with points pt 7 ps variable";
    else g << " using 1:2 with points pt 7 ps 1.5";
    g << " axes x1" << s.axis << " title " << quoted(s.title);
  }
  g << "\nunset output\n";
  return g.str();
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

bool gnuplot_available() { return !find_on_path("gnuplot").empty(); }

void plot_png(const PlotSpec& spec, const std::string& png_path) {
  validate(spec, png_path);
  const std::string gnuplot = find_on_path("gnuplot");
  if (gnuplot.empty())
    throw Error("plot '" + png_path + "': gnuplot was not found on PATH (install it, e.g. apt-get install gnuplot-nox)");
  ScratchDir scratch;
  const std::string data_path = (scratch.path / "data.txt").string();
  const std::string script_path = (scratch.path / "plot.gp").string();
  const std::string png_out = (scratch.path / "plot.png").string();
  const std::string log_path = (scratch.path / "gnuplot.log").string();
  write_data(spec, data_path);
  {
    std::ofstream script(script_path);
    script << script_text(spec, data_path, png_out);
    if (!script) throw Error("plot: cannot write gnuplot script '" + script_path + "'");
  }
  const int status = run_process({gnuplot, script_path}, log_path);
  std::error_code ec;
  const bool produced = fs::exists(png_out, ec) && fs::file_size(png_out, ec) > 0;
  if (!exited_ok(status) || !produced)
    throw Error("plot '" + png_path + "': gnuplot failed (" + status_text(status) +
                (produced ? "" : ", no PNG written") + "): " + read_text(log_path));
  // gnuplot wrote into the scratch dir, which may be on another file system: copy through
  // atomic_write so the destination only ever holds a complete PNG.
  const std::vector<unsigned char> png = read_file_bytes(png_out);
  atomic_write(png_path, [&](std::ostream& out) {
    out.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
  });
}

}  // namespace leanseg
