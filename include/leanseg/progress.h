// A terminal progress bar with rate and ETA on stderr (one updating line on a TTY, a line every
// ~10% otherwise so CI logs stay readable).
#pragma once
#include <chrono>
#include <string>

namespace leanseg {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, bool enabled = true);
  void update(int64_t done, const std::string& status = "");
  void finish(const std::string& status = "");

 private:
  std::string label_;
  int64_t total_;
  bool enabled_, tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_;
};

std::string format_duration(double seconds);

}  // namespace leanseg
