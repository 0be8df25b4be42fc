// A validating safetensors reader/writer (https://github.com/huggingface/safetensors format):
// 8-byte little-endian header length N, N bytes of JSON, then the raw tensor bytes.
// Torch-free so the inference runtime can use it too.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace leanseg {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
// Throws Error for names the format does not define.
DType dtype_from_name(const std::string& name);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t begin = 0;  // byte offsets into the data section
  size_t end = 0;
  int64_t numel() const;
  size_t nbytes() const { return end - begin; }
};

// "[1, 3, 256, 256]": a shape as error messages print it.
std::string shape_str(const std::vector<int64_t>& shape);

// An opened, fully validated file held in memory.
class SafeTensorsFile {
 public:
  // Reads and validates `path`. Throws Error naming the file and the problem for: files too
  // short, header length out of bounds, bad JSON, unknown dtypes, negative dims, byte ranges
  // that disagree with shape × dtype, ranges outside the data, overlapping ranges, holes,
  // and non-string metadata.
  static SafeTensorsFile open(const std::string& path);
  // Same validation on bytes already in memory; `label` names them in error messages.
  static SafeTensorsFile parse(std::vector<unsigned char> bytes, const std::string& label);
  // The same validation reading only the header: tensor data stays on disk and read() fetches
  // it, so a loader never holds the whole file and its parsed copy at once.
  static SafeTensorsFile open_lazy(const std::string& path);

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  // Throws Error naming the file when the tensor is absent.
  const TensorInfo& at(const std::string& name) const;
  // In-memory files only (open/parse); throws Error for open_lazy files.
  const unsigned char* data(const TensorInfo& t) const;
  // Copies t's t.nbytes() bytes to dst, from memory or (open_lazy) from the file.
  void read(const TensorInfo& t, void* dst) const;
  // The header's JSON text (tensor entries in file order of the header).
  const std::string& header_text() const { return header_; }

 private:
  // Validates the 8-byte length and the header at head[0, available) of a file of file_size bytes.
  static SafeTensorsFile from_header(const unsigned char* head, size_t available, uint64_t file_size, const std::string& label);
  std::string path_, header_;
  bool lazy_ = false;
  std::vector<unsigned char> bytes_;
  size_t data_start_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
};

struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};

// Serialises tensors (in the given order) and metadata; the header is space-padded to a
// multiple of 8 bytes so tensor data stays aligned.
std::vector<unsigned char> serialize_safetensors(const std::vector<TensorToWrite>& tensors,
                                                 const std::map<std::string, std::string>& metadata);
// serialize + atomic_write.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace leanseg
