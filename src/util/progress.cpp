#include "leanseg/progress.h"

#include <unistd.h>

#include <cstdio>

namespace leanseg {

std::string format_duration(double s) {
  char buf[32];
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%02ld:%02ld", t / 60, t % 60);
  return buf;
}

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(std::max<int64_t>(1, total)), enabled_(enabled),
      tty_(::isatty(STDERR_FILENO)), start_(std::chrono::steady_clock::now()) {}

void ProgressBar::update(int64_t done, const std::string& status) {
  if (!enabled_) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = static_cast<double>(done) / total_;
  const double eta = done > 0 ? elapsed / done * (total_ - done) : 0;
  if (!tty_) {
    const int decile = static_cast<int>(frac * 10);
    if (decile == last_decile_ && done != total_) return;
    last_decile_ = decile;
  }
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(filled, '=');
  if (filled < kWidth) bar += '>' + std::string(kWidth - filled - 1, ' ');
  std::fprintf(stderr, "%s%s [%s] %lld/%lld %s elapsed %s ETA %s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
               static_cast<long long>(done), static_cast<long long>(total_), status.c_str(),
               format_duration(elapsed).c_str(), format_duration(eta).c_str(), tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

void ProgressBar::finish(const std::string& status) {
  if (!enabled_) return;
  update(total_, status);
  if (tty_) std::fprintf(stderr, "\n");
}

}  // namespace leanseg
