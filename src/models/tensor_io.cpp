#include "leanseg/tensor_io.h"

#include <cstring>
#include <set>

#include "leanseg/error.h"

namespace leanseg {

torch::Dtype to_torch_dtype(DType d) {
  switch (d) {
    case DType::F64: return torch::kFloat64;
    case DType::F32: return torch::kFloat32;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::I64: return torch::kInt64;
    case DType::I32: return torch::kInt32;
    case DType::I16: return torch::kInt16;
    case DType::I8: return torch::kInt8;
    case DType::U8: return torch::kUInt8;
    case DType::BOOL: return torch::kBool;
  }
  throw Error("internal: unhandled dtype");
}

DType from_torch_dtype(torch::Dtype d) {
  for (DType c : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I16,
                  DType::I8, DType::U8, DType::BOOL})
    if (to_torch_dtype(c) == d) return c;
  throw Error(std::string("tensor dtype ") + c10::toString(d) + " cannot be stored in safetensors");
}

std::string shape_string(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

torch::Tensor tensor_from_safetensors(const SafeTensorsFile& file, const TensorInfo& info) {
  auto t = torch::empty(info.shape, torch::TensorOptions().dtype(to_torch_dtype(info.dtype)));
  if (info.nbytes()) std::memcpy(t.data_ptr(), file.data(info), info.nbytes());
  return t;
}

void copy_checked(torch::Tensor& dst, const torch::Tensor& src, const std::string& what) {
  // A scalar and a one-element vector hold the same value (torch writes num_batches_tracked as
  // [] from Python, LibTorch C++ keeps it as [1]).
  const bool scalar_alias = src.numel() == 1 && dst.numel() == 1 && (src.dim() <= 1 && dst.dim() <= 1);
  if (!dst.sizes().equals(src.sizes()) && !scalar_alias)
    throw Error(what + ": shape " + shape_string(src) + " does not match the model's " + shape_string(dst));
  torch::NoGradGuard no_grad;
  dst.copy_(src.reshape(dst.sizes()));
}

std::vector<std::pair<std::string, torch::Tensor>> state_dict(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : m.named_parameters(true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : m.named_buffers(true)) out.emplace_back(b.key(), b.value());
  return out;
}

void save_tensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> keep;  // contiguous CPU copies alive until written
  std::vector<TensorToWrite> views;
  keep.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    keep.push_back(t.detach().to(torch::kCPU).contiguous());
    const auto& c = keep.back();
    views.push_back({name, from_torch_dtype(c.scalar_type()), c.sizes().vec(), c.data_ptr(), c.nbytes()});
  }
  write_safetensors(path, views, metadata);
}

void load_state_strict(torch::nn::Module& m, const SafeTensorsFile& file) {
  const std::string where = "'" + file.path() + "'";
  std::set<std::string> seen;
  for (auto& [name, dst] : state_dict(m)) {
    const TensorInfo* info = file.find(name);
    if (!info) throw Error(where + ": is missing tensor '" + name + "' that the model needs (shape " + shape_string(dst) + ")");
    if (to_torch_dtype(info->dtype) != dst.scalar_type())
      throw Error(where + ": tensor '" + name + "' is " + dtype_name(info->dtype) + ", the model expects " +
                  c10::toString(dst.scalar_type()));
    copy_checked(dst, tensor_from_safetensors(file, *info), where + ": tensor '" + name + "'");
    seen.insert(name);
  }
  for (const auto& t : file.tensors())
    if (!seen.count(t.name)) throw Error(where + ": tensor '" + t.name + "' does not belong to this model");
}

}  // namespace leanseg
