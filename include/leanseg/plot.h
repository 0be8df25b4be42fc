// Plots through gnuplot (pngcairo terminal), driven as a subprocess. Torch-free.
#pragma once
#include <string>
#include <vector>

namespace leanseg {

struct Series {
  std::string title;
  std::vector<double> x, y;
  std::string axis = "y1";  // "y1" or "y2" (right axis)
};

struct PlotSpec {
  std::string title, xlabel, ylabel, y2label;
  std::vector<Series> series;
  bool points = false;  // scatter (with labels when point_labels is set) instead of lines
  std::vector<std::string> point_labels;
  std::vector<double> point_sizes;  // scatter marker sizes (optional)
  int width = 1000, height = 600;
};

// Renders spec to a PNG at `png_path` (atomically). Throws Error if gnuplot is missing or fails.
void plot_png(const PlotSpec& spec, const std::string& png_path);
bool gnuplot_available();

}  // namespace leanseg
