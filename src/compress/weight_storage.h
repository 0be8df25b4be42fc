// Compact storage of the compressible weights in model files (format version 2): encoding into
// safetensors entries plus the metadata entry "storage", and decoding back to fp32 tensors.
// Layout per weight tensor NAME (docs/compression.md):
//   f32      NAME                 F32, the weight's shape (as in version 1)
//   f16/bf16 NAME                 F16/BF16, the weight's shape
//   sparse   NAME.nz_values       F32 [nnz]: the non-zero values in flat (row-major) order
//            NAME.nz_mask         U8 [ceil(numel/8)]: bit i (packed, bit_pack.h) = element i non-zero
//   affineB  NAME.q_codes         U8 [ceil(numel·B/8)]: codes q, packed B bits each
//            NAME.q_scale         F32 [C]: s (C = size of axis 0 per channel, else 1)
//            NAME.q_zero_point    U8 [C]: z
//   affineB of a pruned weight, when smaller ("nnz" in its storage entry):
//            NAME.nz_mask         as for sparse
//            NAME.q_codes         U8 [ceil(nnz·B/8)]: the codes of the non-zero elements only
//            NAME.q_scale, NAME.q_zero_point as above (the other elements are z, i.e. 0)
// "storage": {"kind", "per_channel", "tensors": {NAME: {"kind", "shape", ...}}}; tensors stored
// as f32 are not listed.
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "leanseg/model_file.h"
#include "leanseg/safetensors.h"

namespace leanseg {

struct EncodedState {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;  // what to write, in order
  nlohmann::json storage;  // the "storage" metadata; null when every tensor is f32
};

// Every parameter and buffer of m, the compressible weights stored as `storage` says.
EncodedState encode_state(const torch::nn::Module& m, const WeightStorage& storage);

// Loads `file` into m decoding the tensors listed in `storage` (strict both ways, like
// load_state_strict). Throws Error naming the file and the tensor for missing, mismatched or
// corrupt entries.
void load_encoded_state(torch::nn::Module& m, const SafeTensorsFile& file, const nlohmann::json& storage);

}  // namespace leanseg
