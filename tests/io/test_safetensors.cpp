#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "leanseg/error.h"
#include "leanseg/fs.h"
#include "leanseg/safetensors.h"
#include "test_util.h"

namespace leanseg {
namespace {

using Bytes = std::vector<unsigned char>;

// Builds a raw safetensors byte string from a header JSON text and data bytes, bypassing the
// writer so malformed files can be made on purpose.
Bytes raw_file(const std::string& header, const Bytes& data, int64_t claimed_len = -1) {
  Bytes out(8);
  uint64_t n = claimed_len < 0 ? header.size() : static_cast<uint64_t>(claimed_len);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(n >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

TEST(SafeTensors, RoundTripIsBitExactForEveryDtype) {
  std::mt19937 rng(7);
  std::vector<Bytes> payloads;
  std::vector<TensorToWrite> tensors;
  const std::vector<std::pair<DType, std::vector<int64_t>>> specs = {
      {DType::F32, {3, 4}}, {DType::F16, {5}},     {DType::BF16, {2, 2, 2}}, {DType::I64, {}},
      {DType::U8, {7}},     {DType::F64, {1, 3}},  {DType::I8, {0, 4}},      {DType::BOOL, {3}}};
  payloads.reserve(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    int64_t numel = 1;
    for (auto d : specs[i].second) numel *= d;
    Bytes b(numel * dtype_size(specs[i].first));
    for (auto& x : b) x = static_cast<unsigned char>(rng());
    if (specs[i].first == DType::BOOL)
      for (auto& x : b) x &= 1;
    payloads.push_back(b);
    tensors.push_back({"t" + std::to_string(i), specs[i].first, specs[i].second, payloads.back().data(), b.size()});
  }
  test::TempDir dir;
  const auto path = dir.file("x.safetensors");
  write_safetensors(path, tensors, {{"k", "v"}, {"json", "{\"a\":1}"}});
  const auto f = SafeTensorsFile::open(path);
  ASSERT_EQ(f.tensors().size(), specs.size());
  EXPECT_EQ(f.metadata().at("json"), "{\"a\":1}");
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& t = f.at("t" + std::to_string(i));
    EXPECT_EQ(t.dtype, specs[i].first);
    EXPECT_EQ(t.shape, specs[i].second);
    ASSERT_EQ(t.nbytes(), payloads[i].size());
    if (t.nbytes() > 0) EXPECT_EQ(0, std::memcmp(f.data(t), payloads[i].data(), t.nbytes()));  // empty: data() may be null
  }
  // A lazily opened file validates the same header and reads the same bytes from disk.
  const auto lazy = SafeTensorsFile::open_lazy(path);
  ASSERT_EQ(lazy.tensors().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& t = lazy.at("t" + std::to_string(i));
    Bytes got(t.nbytes());
    lazy.read(t, got.data());
    EXPECT_EQ(got, payloads[i]);
  }
  EXPECT_ERROR_CONTAINS(lazy.data(lazy.at("t0")), "must be read with read()");
  // Header is padded so data starts 8-byte aligned.
  const auto bytes = read_file_bytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  EXPECT_EQ(n % 8, 0u);
  // Re-serialising what was read gives the identical file.
  std::vector<TensorToWrite> again;
  for (const auto& t : f.tensors()) again.push_back({t.name, t.dtype, t.shape, f.data(t), t.nbytes()});
  EXPECT_EQ(serialize_safetensors(again, f.metadata()), bytes);
}

TEST(SafeTensors, WriterRejectsInconsistentTensors) {
  float x[3] = {1, 2, 3};
  EXPECT_ERROR_CONTAINS(serialize_safetensors({{"a", DType::F32, {4}, x, 12}}, {}), "do not match shape");
  EXPECT_ERROR_CONTAINS(serialize_safetensors({{"a", DType::F32, {3}, x, 12}, {"a", DType::F32, {3}, x, 12}}, {}),
                        "used twice");
}

struct Malformed {
  const char* label;
  Bytes bytes;
  const char* message;
};

std::vector<Malformed> malformed_cases() {
  const Bytes four_floats(16, 0);
  const std::string good = R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  Bytes truncated = raw_file(good, four_floats);
  truncated.resize(truncated.size() - 5);
  return {
      {"empty file", {}, "shorter than the 8-byte header length"},
      {"header length beyond file", raw_file(good, four_floats, 1 << 20), "exceeds the file"},
      {"absurd header length", raw_file(good, four_floats, int64_t(1) << 40), "exceeds the file"},
      {"not JSON", raw_file("{\"w\": [1, 2", four_floats), "not valid JSON"},
      {"JSON array", raw_file("[1,2,3]", {}), "not an object"},
      {"unknown dtype", raw_file(R"({"w":{"dtype":"F8","shape":[4],"data_offsets":[0,16]}})", four_floats), "unknown dtype 'F8'"},
      {"shape/bytes mismatch", raw_file(R"({"w":{"dtype":"F32","shape":[5],"data_offsets":[0,16]}})", four_floats), "needs 20 bytes"},
      {"negative dim", raw_file(R"({"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", four_floats), "non-negative"},
      {"truncated data", truncated, "past the"},
      {"overlap", raw_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", four_floats), "overlap"},
      {"hole", raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", four_floats), "holes"},
      {"trailing bytes", raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", four_floats), "not described"},
      {"missing offsets", raw_file(R"({"a":{"dtype":"F32","shape":[4]}})", four_floats), "no 'data_offsets'"},
      {"reversed offsets", raw_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[16,0]}})", four_floats), "end before begin"},
      {"non-string metadata", raw_file(R"({"__metadata__":{"x":1}})", {}), "is not a string"},
  };
}

TEST(SafeTensors, MalformedFilesFailWithClearMessages) {
  for (const auto& c : malformed_cases()) {
    SCOPED_TRACE(c.label);
    EXPECT_ERROR_CONTAINS(SafeTensorsFile::parse(c.bytes, "bad.safetensors"), c.message);
    EXPECT_ERROR_CONTAINS(SafeTensorsFile::parse(c.bytes, "bad.safetensors"), "'bad.safetensors'");
  }
  test::TempDir dir;  // the same checks when only the header is read
  const std::string path = dir.file("bad.safetensors");
  for (const auto& c : malformed_cases()) {
    SCOPED_TRACE(c.label);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(c.bytes.data()),
                                                static_cast<std::streamsize>(c.bytes.size()));
    EXPECT_ERROR_CONTAINS(SafeTensorsFile::open_lazy(path), c.message);
    EXPECT_ERROR_CONTAINS(SafeTensorsFile::open_lazy(path), "bad.safetensors'");
  }
  EXPECT_ERROR_CONTAINS(SafeTensorsFile::open_lazy("/nonexistent/model.safetensors"), "/nonexistent/model.safetensors");
}

// Hostile input (issue 17): [2^62, 4] used to multiply to 0 elements and pass as an empty
// tensor with data_offsets [0, 0]; a product that overflows the byte count is refused too.
TEST(SafeTensors, ShapeWhoseSizeOverflowsIsRefusedNamingFileAndTensor) {
  auto message = [](const std::string& header) {
    try {
      SafeTensorsFile::parse(raw_file(header, {}), "bad.safetensors");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message(R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})"),
            "'bad.safetensors': tensor 'w': shape [4611686018427387904, 4] of F32 is too large: its size in bytes "
            "overflows 64 bits");
  // 2^62 elements fit in int64, their 2^64 bytes do not.
  EXPECT_EQ(message(R"({"w":{"dtype":"F32","shape":[1073741824,1073741824,4],"data_offsets":[0,0]}})"),
            "'bad.safetensors': tensor 'w': shape [1073741824, 1073741824, 4] of F32 is too large: its size in bytes "
            "overflows 64 bits");
  // An empty axis makes the tensor empty whatever the others are: still a valid file.
  EXPECT_EQ(message(R"({"w":{"dtype":"F32","shape":[0,4611686018427387904,4],"data_offsets":[0,0]}})"), "accepted");
}

TEST(SafeTensors, MissingFileAndMissingTensorAreNamed) {
  EXPECT_ERROR_CONTAINS(SafeTensorsFile::open("/nonexistent/model.safetensors"), "no such file");
  float x[2] = {1, 2};
  const auto f = SafeTensorsFile::parse(serialize_safetensors({{"a", DType::F32, {2}, x, 8}}, {}), "m.safetensors");
  EXPECT_ERROR_CONTAINS(f.at("b"), "has no tensor named 'b'");
}

TEST(AtomicWrite, FailedWriteLeavesTheOldFileAndNoTemp) {
  test::TempDir dir;
  const auto path = dir.file("out.bin");
  atomic_write(path, [](std::ostream& o) { o << "old"; });
  EXPECT_THROW(atomic_write(path, [](std::ostream& o) {
                 o << "partial";
                 throw Error("simulated crash");
               }),
               Error);
  EXPECT_EQ(read_file_bytes(path), (Bytes{'o', 'l', 'd'}));
  size_t files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
  EXPECT_ERROR_CONTAINS(atomic_write(dir.file("no/such/dir/x"), [](std::ostream&) {}), "does not exist");
}

// A killed export or compress leaves "<target>.tmp.<pid>.<n>" behind (issue 17): the next write
// of the same target removes it once its process is gone; live writers' files and other
// targets' files stay.
TEST(AtomicWrite, StaleTempFilesOfDeadWritersAreRemoved) {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // reaped: the pid names no process now
  test::TempDir dir;
  const std::string dead = std::to_string(child), alive = std::to_string(::getppid());
  const std::vector<std::string> names = {"out.bin.tmp." + dead + ".123", "other.bin.tmp." + dead + ".7",
                                          "out.bin.tmp." + alive + ".5", "out.bin.tmp.notes"};
  for (const auto& n : names) std::ofstream(dir.file(n)) << "partial";
  const auto exists = [&](const std::string& n) { return std::filesystem::exists(dir.file(n)); };
  atomic_write(dir.file("out.bin"), [](std::ostream& o) { o << "new"; });
  EXPECT_FALSE(exists(names[0])) << "the dead writer's temp file of out.bin is left";
  EXPECT_TRUE(exists(names[1]) && exists(names[2]) && exists(names[3]));
  EXPECT_EQ(read_file_bytes(dir.file("out.bin")), (Bytes{'n', 'e', 'w'}));
  atomic_write(dir.file("other.bin"), [](std::ostream& o) { o << "x"; });
  EXPECT_FALSE(exists(names[1]));
  EXPECT_TRUE(exists(names[2]) && exists(names[3]));
}

}  // namespace
}  // namespace leanseg
