#include "compress/weight_storage.h"

#include <cstring>
#include <set>

#include "io/bit_pack.h"
#include "compress/quantize.h"
#include "leanseg/error.h"
#include "leanseg/tensor_io.h"

namespace leanseg {
namespace {

using Tensors = std::vector<std::pair<std::string, torch::Tensor>>;

torch::Tensor bytes_tensor(const std::vector<uint8_t>& bytes) {
  auto t = torch::empty({static_cast<int64_t>(bytes.size())}, torch::kUInt8);
  if (!bytes.empty()) std::memcpy(t.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  return t;
}

std::string shape_text(const std::vector<int64_t>& shape) { return nlohmann::json(shape).dump(); }

// Appends the entries of weight `name` stored as st.kind; returns its "storage" entry, or null
// when it is stored as plain f32 (sparse storage that would not be smaller).
nlohmann::json encode_weight(const std::string& name, const torch::Tensor& w, const WeightStorage& st, Tensors& out) {
  const auto wf = w.detach().to(torch::kCPU).to(torch::kFloat32).contiguous();
  const nlohmann::json shape = wf.sizes().vec();
  if (st.kind == "f16" || st.kind == "bf16") {
    out.emplace_back(name, wf.to(st.kind == "f16" ? torch::kFloat16 : torch::kBFloat16));
    return {{"kind", st.kind}, {"shape", shape}};
  }
  if (st.kind == "sparse") {
    const auto flat = wf.flatten();
    const auto nonzero = flat != 0;
    const int64_t nnz = nonzero.sum().item<int64_t>();
    const size_t n = static_cast<size_t>(flat.numel());
    if (static_cast<size_t>(nnz) * 4 + packed_size(n, 1) >= n * 4) {
      out.emplace_back(name, w);
      return nullptr;
    }
    const auto bits = nonzero.to(torch::kUInt8).contiguous();
    out.emplace_back(name + ".nz_values", flat.masked_select(nonzero));
    out.emplace_back(name + ".nz_mask", bytes_tensor(pack_codes(bits.data_ptr<uint8_t>(), n, 1)));
    return {{"kind", "sparse"}, {"shape", shape}, {"nnz", nnz}};
  }
  const int bits = storage_bits(st.kind);
  if (bits == 0) {  // f32
    out.emplace_back(name, w);
    return nullptr;
  }
  const AffineQuantized q = affine_quantize(wf, bits, st.per_channel);
  nlohmann::json entry = {{"kind", st.kind}, {"shape", shape}, {"bits", bits}, {"per_channel", st.per_channel}};
  // A pruned weight keeps only its non-zero codes plus a 1-bit mask when that is smaller: a
  // zero always quantizes to the zero point, so decoding gives exactly the same codes.
  const auto nonzero = (wf != 0).flatten();
  const int64_t nnz = nonzero.sum().item<int64_t>();
  const size_t n = static_cast<size_t>(wf.numel());
  torch::Tensor codes = q.codes.flatten().contiguous();
  if (packed_size(static_cast<size_t>(nnz), bits) + packed_size(n, 1) < packed_size(n, bits)) {
    const auto mask_bits = nonzero.to(torch::kUInt8).contiguous();
    out.emplace_back(name + ".nz_mask", bytes_tensor(pack_codes(mask_bits.data_ptr<uint8_t>(), n, 1)));
    codes = codes.masked_select(nonzero).contiguous();
    entry["nnz"] = nnz;
  }
  out.emplace_back(name + ".q_codes", bytes_tensor(pack_codes(codes.data_ptr<uint8_t>(), codes.numel(), bits)));
  out.emplace_back(name + ".q_scale", q.scale);
  out.emplace_back(name + ".q_zero_point", q.zero_point);
  return entry;
}

// Reads the entries of one file with their expected dtype and shape, remembering which it used.
struct EntryReader {
  const SafeTensorsFile& file;
  std::string where;
  std::set<std::string> used;

  torch::Tensor get(const std::string& name, DType dtype, const std::vector<int64_t>& shape) {
    const TensorInfo* info = file.find(name);
    require(info != nullptr, where + ": is missing tensor '" + name + "' (compact weight storage)");
    require(info->dtype == dtype, where + ": tensor '" + name + "' is " + dtype_name(info->dtype) + ", expected " + dtype_name(dtype));
    require(info->shape == shape, where + ": tensor '" + name + "' has shape " + shape_text(info->shape) + ", expected " + shape_text(shape));
    used.insert(name);
    return tensor_from_safetensors(file, *info);
  }
};

std::vector<uint8_t> unpack_entry(const torch::Tensor& packed, int64_t count, int bits, const std::string& what) {
  try {
    return unpack_codes(packed.data_ptr<uint8_t>(), static_cast<size_t>(packed.numel()), static_cast<size_t>(count), bits);
  } catch (const Error& e) {
    throw Error(what + ": " + e.what());
  }
}

// The 1-bit non-zero mask of weight `name` with n elements, as a bool tensor [n].
torch::Tensor read_mask(EntryReader& rd, const std::string& name, int64_t n, const std::string& what) {
  const auto packed = rd.get(name + ".nz_mask", DType::U8, {static_cast<int64_t>(packed_size(n, 1))});
  auto bits = unpack_entry(packed, n, 1, what);
  return torch::from_blob(bits.data(), {n}, torch::kUInt8).to(torch::kBool);
}

torch::Tensor decode_weight(EntryReader& rd, const std::string& name, const nlohmann::json& entry, const torch::Tensor& dst) {
  const std::string what = rd.where + ": tensor '" + name + "'";
  require(entry.is_object() && entry.contains("kind") && entry["kind"].is_string(), what + ": storage entry has no 'kind'");
  const std::string kind = entry["kind"].get<std::string>();
  const std::vector<int64_t> shape = dst.sizes().vec();
  if (entry.contains("shape"))
    require(entry["shape"] == nlohmann::json(shape),
            what + ": stored shape " + entry["shape"].dump() + " does not match the model's " + shape_text(shape));
  const int64_t n = dst.numel();
  if (kind == "f16" || kind == "bf16")
    return rd.get(name, kind == "f16" ? DType::F16 : DType::BF16, shape).to(torch::kFloat32);
  if (kind == "sparse") {
    const auto mask = read_mask(rd, name, n, what);
    const auto values = rd.get(name + ".nz_values", DType::F32, {mask.sum().item<int64_t>()});
    return torch::zeros({n}, torch::kFloat32).masked_scatter_(mask, values).reshape(shape);
  }
  const int bits = storage_bits(kind);
  require(bits != 0, what + ": unknown storage kind '" + kind + "' (f16, bf16, sparse, affine8, affine4, affine2)");
  AffineQuantized q;
  q.bits = bits;
  q.per_channel = entry.value("per_channel", false);
  require(!q.per_channel || !shape.empty(), what + ": per-channel storage of a scalar");
  const int64_t channels = q.per_channel ? shape[0] : 1;
  // Layout first (entry sizes), values second: a wrong bit width is reported as the wrong size.
  torch::Tensor mask;
  int64_t count = n;
  if (entry.contains("nnz")) {  // pruned: codes of the non-zero elements only
    mask = read_mask(rd, name, n, what);
    count = mask.sum().item<int64_t>();
    require(entry["nnz"].is_number_integer() && entry["nnz"].get<int64_t>() == count,
            what + ": storage says " + entry["nnz"].dump() + " non-zero codes, the mask has " + std::to_string(count) + " (corrupt file)");
  }
  const auto packed = rd.get(name + ".q_codes", DType::U8, {static_cast<int64_t>(packed_size(static_cast<size_t>(count), bits))});
  q.scale = rd.get(name + ".q_scale", DType::F32, {channels});
  require(torch::isfinite(q.scale).all().item<bool>() && (q.scale > 0).all().item<bool>(),
          what + ": quantization scale is not finite and positive (corrupt file)");
  q.zero_point = rd.get(name + ".q_zero_point", DType::U8, {channels});
  require((q.zero_point.to(torch::kInt32) < (1 << bits)).all().item<bool>(),
          what + ": zero point does not fit in " + std::to_string(bits) + " bits (corrupt file)");
  auto codes = unpack_entry(packed, count, bits, what);
  const auto stored = torch::from_blob(codes.data(), {count}, torch::kUInt8);
  if (!mask.defined()) {
    q.codes = stored.reshape(shape).clone();
    return affine_dequantize(q);
  }
  // The elements left out are the zero point, i.e. exactly 0 after dequantization.
  std::vector<int64_t> zp_shape(shape.size(), 1);
  if (!shape.empty()) zp_shape[0] = channels;
  q.codes = q.zero_point.reshape(zp_shape).expand(shape).flatten().clone();
  q.codes.masked_scatter_(mask, stored);
  q.codes = q.codes.reshape(shape);
  return affine_dequantize(q);
}

}  // namespace

void check_storage_kind(const std::string& kind) {
  for (const char* k : {"f32", "f16", "bf16", "sparse", "affine8", "affine4", "affine2"})
    if (kind == k) return;
  throw Error("unknown weight storage '" + kind + "' (f32, f16, bf16, sparse, affine8, affine4, affine2)");
}

EncodedState encode_state(const torch::nn::Module& m, const WeightStorage& st) {
  check_storage_kind(st.kind);
  require(!st.per_channel || storage_bits(st.kind) != 0,
          "per-channel weight storage applies to affine8, affine4 and affine2, not " + st.kind);
  std::set<std::string> compressible;
  for (const auto& nw : compressible_weights(m)) compressible.insert(nw.first);
  EncodedState e;
  nlohmann::json entries = nlohmann::json::object();
  for (const auto& [name, t] : state_dict(m)) {
    if (st.kind == "f32" || !compressible.count(name)) {
      e.tensors.emplace_back(name, t);
      continue;
    }
    auto entry = encode_weight(name, t, st, e.tensors);
    if (!entry.is_null()) entries[name] = std::move(entry);
  }
  if (!entries.empty()) e.storage = {{"kind", st.kind}, {"per_channel", st.per_channel}, {"tensors", entries}};
  return e;
}

void load_encoded_state(torch::nn::Module& m, const SafeTensorsFile& file, const nlohmann::json& storage) {
  EntryReader rd{file, "'" + file.path() + "'", {}};
  require(storage.is_object() && storage.contains("tensors") && storage["tensors"].is_object(),
          rd.where + ": 'storage' metadata has no 'tensors' object");
  const auto& entries = storage["tensors"];
  std::set<std::string> model_tensors;
  for (auto& [name, dst] : state_dict(m)) {
    model_tensors.insert(name);
    torch::Tensor src;
    if (entries.contains(name)) {
      src = decode_weight(rd, name, entries[name], dst);
    } else {
      const TensorInfo* info = file.find(name);
      require(info != nullptr, rd.where + ": is missing tensor '" + name + "' that the model needs (shape " + shape_string(dst) + ")");
      require(to_torch_dtype(info->dtype) == dst.scalar_type(), rd.where + ": tensor '" + name + "' is " + dtype_name(info->dtype) +
                                                                    ", the model expects " + c10::toString(dst.scalar_type()));
      rd.used.insert(name);
      src = tensor_from_safetensors(file, *info);
    }
    copy_checked(dst, src, rd.where + ": tensor '" + name + "'");
  }
  for (auto it = entries.begin(); it != entries.end(); ++it)
    require(model_tensors.count(it.key()) > 0, rd.where + ": storage lists tensor '" + it.key() + "' that does not belong to this model");
  for (const auto& t : file.tensors())
    require(rd.used.count(t.name) > 0, rd.where + ": tensor '" + t.name + "' does not belong to this model");
}

}  // namespace leanseg
