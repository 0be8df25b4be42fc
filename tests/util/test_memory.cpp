// keep_freed_memory(): freed large blocks stay mapped, so touching a re-allocated block costs no
// page faults; glibc's default policy (restored here for the comparison) faults every page again.
#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdlib>

#include "leanseg/memory.h"

namespace {

constexpr size_t kBlock = size_t{64} << 20;  // 64 MiB: above glibc's largest mmap threshold
constexpr size_t kPage = 4096;
constexpr int kRounds = 4;

// Minor page faults of kRounds malloc + touch every page + free of one large block.
int64_t faults_of_reallocating() {
  const int64_t before = leanseg::process_usage().minor_faults;
  for (int r = 0; r < kRounds; ++r) {
    auto* p = static_cast<volatile char*>(std::malloc(kBlock));
    for (size_t i = 0; i < kBlock; i += kPage) p[i] = static_cast<char>(i);
    std::free(const_cast<char*>(p));
  }
  return leanseg::process_usage().minor_faults - before;
}

}  // namespace

TEST(Memory, FreedLargeBlocksStayMappedAndDefaultPolicyFaultsThemIn) {
  if (std::getenv("MALLOC_MMAP_MAX_") || std::getenv("MALLOC_TRIM_THRESHOLD_") || std::getenv("LEANSEG_SYSTEM_MALLOC"))
    GTEST_SKIP() << "the environment sets glibc's malloc policy itself";
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer replaces glibc's malloc (mallopt has no effect)";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  GTEST_SKIP() << "AddressSanitizer replaces glibc's malloc (mallopt has no effect)";
#endif
#endif
  const int64_t pages = kBlock / kPage;
  // glibc's defaults: every large block is a fresh mmap, each page faulted on first touch.
  mallopt(M_MMAP_MAX, 65536);
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mallopt(M_TRIM_THRESHOLD, 128 * 1024);
  EXPECT_GT(faults_of_reallocating(), kRounds * pages * 9 / 10);

  ASSERT_TRUE(leanseg::keep_freed_memory());
  faults_of_reallocating();  // first touch of the heap's new pages
  EXPECT_LT(faults_of_reallocating(), pages / 10);
}

TEST(Memory, ProcessUsageCountsTime) {
  const leanseg::ProcessUsage u = leanseg::process_usage();
  EXPECT_GT(u.peak_rss_bytes, 0);
  EXPECT_GE(u.user_seconds + u.system_seconds, 0.0);
}
