#include "leanseg/memory.h"

#include <malloc.h>
#include <sys/resource.h>

#include <cstdlib>

namespace leanseg {

bool keep_freed_memory() {
  const char* opt_out = std::getenv("LEANSEG_SYSTEM_MALLOC");
  if (opt_out != nullptr && opt_out[0] != '\0' && opt_out[0] != '0') return false;
  bool applied = false;
  if (std::getenv("MALLOC_MMAP_MAX_") == nullptr) applied |= mallopt(M_MMAP_MAX, 0) == 1;
  // glibc stores the threshold as size_t: -1 means the heap top is never trimmed.
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr) applied |= mallopt(M_TRIM_THRESHOLD, -1) == 1;
  return applied;
}

ProcessUsage process_usage() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  ProcessUsage u;
  u.minor_faults = ru.ru_minflt;
  u.major_faults = ru.ru_majflt;
  u.user_seconds = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6;
  u.system_seconds = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
  u.peak_rss_bytes = static_cast<int64_t>(ru.ru_maxrss) * 1024;
  return u;
}

}  // namespace leanseg
