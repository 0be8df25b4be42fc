#include "leanseg/safetensors.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <nlohmann/json.hpp>

#include "leanseg/error.h"
#include "leanseg/fs.h"
#include "leanseg/limits.h"

namespace leanseg {
namespace {

// A header larger than this is certainly corrupt (the reference implementation uses 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeRow {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeRow kDTypes[] = {
    {DType::F64, "F64", 8},  {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},  {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

const DTypeRow& row_of(DType d) {
  for (const auto& r : kDTypes)
    if (r.dtype == d) return r;
  throw Error("internal: unknown dtype");
}

TensorInfo parse_entry(const std::string& name, const nlohmann::json& v, size_t data_size,
                       const std::string& where) {
  const std::string ctx = where + ": tensor '" + name + "'";
  if (!v.is_object()) throw Error(ctx + ": header entry is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) throw Error(ctx + ": header entry has no '" + key + "'");
  if (!v["dtype"].is_string()) throw Error(ctx + ": 'dtype' is not a string");
  TensorInfo t;
  t.name = name;
  try {
    t.dtype = dtype_from_name(v["dtype"].get<std::string>());
  } catch (const Error& e) {
    throw Error(ctx + ": " + e.what());
  }
  if (!v["shape"].is_array()) throw Error(ctx + ": 'shape' is not an array");
  for (const auto& d : v["shape"]) {
    const auto dim = json_int64(d);
    if (!dim || *dim < 0)
      throw Error(ctx + ": shape " + v["shape"].dump() + " has a dimension that is not a non-negative integer");
    t.shape.push_back(*dim);
  }
  // Unchecked, [2^62, 4] would multiply to 0 elements and pass as an empty tensor.
  const auto numel = checked_numel(t.shape);
  uint64_t bytes = 0;
  if (!numel || __builtin_mul_overflow(static_cast<uint64_t>(*numel), dtype_size(t.dtype), &bytes))
    throw Error(ctx + ": shape " + shape_str(t.shape) + " of " + dtype_name(t.dtype) +
                " is too large: its size in bytes overflows 64 bits");
  const auto& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    throw Error(ctx + ": 'data_offsets' must be two non-negative integers, got " + off.dump());
  t.begin = off[0].get<uint64_t>();
  t.end = off[1].get<uint64_t>();
  if (t.end < t.begin)
    throw Error(ctx + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "] end before begin");
  if (t.end > data_size)
    throw Error(ctx + ": data_offsets end " + std::to_string(t.end) + " is past the " +
                std::to_string(data_size) + " data bytes in the file (truncated file?)");
  if (bytes != t.nbytes())
    throw Error(ctx + ": shape " + shape_str(t.shape) + " of " + dtype_name(t.dtype) + " needs " +
                std::to_string(bytes) + " bytes but data_offsets cover " + std::to_string(t.nbytes()));
  return t;
}

void check_layout(std::vector<TensorInfo> sorted, size_t data_size, const std::string& where) {
  std::sort(sorted.begin(), sorted.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  size_t cursor = 0;
  for (const auto& t : sorted) {
    if (t.begin < cursor)
      throw Error(where + ": tensor '" + t.name + "' bytes [" + std::to_string(t.begin) + ", " +
                  std::to_string(t.end) + ") overlap the previous tensor");
    if (t.begin > cursor)
      throw Error(where + ": " + std::to_string(t.begin - cursor) + " unused bytes before tensor '" +
                  t.name + "' (the format forbids holes)");
    cursor = t.end;
  }
  if (cursor != data_size)
    throw Error(where + ": " + std::to_string(data_size - cursor) +
                " bytes after the last tensor are not described by the header");
}

}  // namespace

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

size_t dtype_size(DType d) { return row_of(d).size; }
const char* dtype_name(DType d) { return row_of(d).name; }
DType dtype_from_name(const std::string& name) {
  for (const auto& r : kDTypes)
    if (name == r.name) return r.dtype;
  throw Error("unknown dtype '" + name + "' (expected F64, F32, F16, BF16, I64, I32, I16, I8, U8 or BOOL)");
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafeTensorsFile SafeTensorsFile::open(const std::string& path) {
  return parse(read_file_bytes(path), path);
}

SafeTensorsFile SafeTensorsFile::parse(std::vector<unsigned char> bytes, const std::string& label) {
  SafeTensorsFile f = from_header(bytes.data(), bytes.size(), bytes.size(), label);
  f.bytes_ = std::move(bytes);
  return f;
}

SafeTensorsFile SafeTensorsFile::open_lazy(const std::string& path) {
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) throw Error("'" + path + "': cannot read (" + ec.message() + ")");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("'" + path + "': cannot open for reading");
  std::vector<unsigned char> head(static_cast<size_t>(std::min<uint64_t>(size, 8)));
  in.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(head.size()));
  if (head.size() == 8) {
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | head[i];
    if (header_len <= kMaxHeaderBytes && header_len <= size - 8) {  // else from_header reports it
      head.resize(static_cast<size_t>(8 + header_len));
      in.read(reinterpret_cast<char*>(head.data() + 8), static_cast<std::streamsize>(header_len));
    }
  }
  if (!in) throw Error("'" + path + "': read error in the header");
  SafeTensorsFile f = from_header(head.data(), head.size(), size, path);
  f.lazy_ = true;
  return f;
}

const unsigned char* SafeTensorsFile::data(const TensorInfo& t) const {
  if (lazy_) throw Error("'" + path_ + "': tensor data of a lazily opened file must be read with read()");
  return bytes_.data() + data_start_ + t.begin;
}

void SafeTensorsFile::read(const TensorInfo& t, void* dst) const {
  if (t.nbytes() == 0) return;
  if (!lazy_) {
    std::memcpy(dst, data(t), t.nbytes());
    return;
  }
  std::ifstream in(path_, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(data_start_ + t.begin));
  in.read(static_cast<char*>(dst), static_cast<std::streamsize>(t.nbytes()));
  if (!in || static_cast<size_t>(in.gcount()) != t.nbytes())
    throw Error("'" + path_ + "': cannot read tensor '" + t.name + "' (the file changed or shrank while loading)");
}

SafeTensorsFile SafeTensorsFile::from_header(const unsigned char* head, size_t available, uint64_t file_size,
                                             const std::string& label) {
  const std::string where = "'" + label + "'";
  if (file_size < 8)
    throw Error(where + ": not a safetensors file (" + std::to_string(file_size) +
                " bytes, shorter than the 8-byte header length)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | head[i];
  if (header_len > kMaxHeaderBytes || header_len > file_size - 8)
    throw Error(where + ": header length " + std::to_string(header_len) + " exceeds the file (" +
                std::to_string(file_size) + " bytes): truncated or not a safetensors file");
  if (header_len < 2) throw Error(where + ": header length " + std::to_string(header_len) + " is too small for JSON");
  require(available >= 8 + header_len, where + ": header not read completely");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(head + 8, head + 8 + header_len);
  } catch (const std::exception& e) {
    throw Error(where + ": header is not valid JSON (" + e.what() + ")");
  }
  if (!header.is_object()) throw Error(where + ": header JSON is not an object");

  SafeTensorsFile f;
  f.path_ = label;
  f.header_.assign(reinterpret_cast<const char*>(head) + 8, static_cast<size_t>(header_len));
  f.data_start_ = 8 + header_len;
  const size_t data_size = static_cast<size_t>(file_size) - f.data_start_;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) throw Error(where + ": __metadata__ is not a JSON object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string())
          throw Error(where + ": __metadata__ value of '" + m.key() + "' is not a string");
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    f.index_[it.key()] = f.tensors_.size();
    f.tensors_.push_back(parse_entry(it.key(), it.value(), data_size, where));
  }
  check_layout(f.tensors_, data_size, where);
  // Keep file order (by offset) for deterministic iteration.
  std::sort(f.tensors_.begin(), f.tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.begin < b.begin || (a.begin == b.begin && a.name < b.name); });
  f.index_.clear();
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_[f.tensors_[i].name] = i;
  return f;
}

const TensorInfo* SafeTensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafeTensorsFile::at(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) throw Error("'" + path_ + "': has no tensor named '" + name + "'");
  return *t;
}

std::vector<unsigned char> serialize_safetensors(const std::vector<TensorToWrite>& tensors,
                                                 const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto& t : tensors) {
    int64_t numel = 1;
    for (int64_t d : t.shape) {
      require(d >= 0, "tensor '" + t.name + "': negative dimension");
      numel *= d;
    }
    require(static_cast<size_t>(numel) * dtype_size(t.dtype) == t.nbytes,
            "tensor '" + t.name + "': " + std::to_string(t.nbytes) + " bytes do not match shape " +
                shape_str(t.shape) + " of " + dtype_name(t.dtype));
    require(!header.contains(t.name), "tensor name '" + t.name + "' is used twice");
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::vector<unsigned char> out(8 + json.size() + offset);
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, json.data(), json.size());
  size_t pos = 8 + json.size();
  for (const auto& t : tensors) {
    if (t.nbytes) std::memcpy(out.data() + pos, t.data, t.nbytes);
    pos += t.nbytes;
  }
  return out;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const auto bytes = serialize_safetensors(tensors, metadata);
  atomic_write(path, [&](std::ostream& out) { out.write(reinterpret_cast<const char*>(bytes.data()), bytes.size()); });
}

}  // namespace leanseg
