// Shared helpers for the test suite.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace leanseg::test {

// ../shared next to the repository (data and weights are never committed).
inline std::string shared_dir() { return LEANSEG_SHARED_DIR; }
inline std::string weights_path() { return shared_dir() + "/weights/mobilenet_v2_imagenet.safetensors"; }

// A fresh empty directory under the system temp dir, removed by the destructor.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("leanseg_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            std::to_string(reinterpret_cast<uintptr_t>(this)));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// Expects `statement` to throw leanseg::Error whose message contains `needle`.
#define EXPECT_ERROR_CONTAINS(statement, needle)                                              \
  do {                                                                                        \
    try {                                                                                     \
      statement;                                                                              \
      ADD_FAILURE() << "expected leanseg::Error containing '" << (needle) << "'";             \
    } catch (const leanseg::Error& e) {                                                       \
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what(); \
    }                                                                                         \
  } while (0)

}  // namespace leanseg::test
