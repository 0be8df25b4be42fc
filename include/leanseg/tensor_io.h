// Bridges between torch tensors and safetensors files/state dicts.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>

#include "leanseg/safetensors.h"

namespace leanseg {

torch::Dtype to_torch_dtype(DType d);
DType from_torch_dtype(torch::Dtype d);  // throws Error for types safetensors lacks
std::string shape_string(const torch::Tensor& t);

// A fresh (owned, contiguous) tensor with the entry's dtype and shape.
torch::Tensor tensor_from_safetensors(const SafeTensorsFile& file, const TensorInfo& info);

// dst.copy_(src) after checking shapes; `what` prefixes the error message.
void copy_checked(torch::Tensor& dst, const torch::Tensor& src, const std::string& what);

// Every parameter and buffer of `m` by its dotted name, in registration order.
std::vector<std::pair<std::string, torch::Tensor>> state_dict(const torch::nn::Module& m);

// Writes tensors (made contiguous, on CPU) atomically to `path`.
void save_tensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata);

// Loads every tensor of `file` into the matching parameter/buffer of `m` (strict: the names
// and shapes must match exactly both ways). Throws Error naming the file and tensor.
void load_state_strict(torch::nn::Module& m, const SafeTensorsFile& file);

}  // namespace leanseg
