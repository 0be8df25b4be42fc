// Real INT8 inference through LibTorch's quantized CPU kernels (C3/C5): the model's exported
// graph (graph_export.h: BatchNorm folded, the same graph ONNX export and the runtime use) is
// executed op by op with LibTorch. Every convolution runs as `quantized::conv2d` (u8 activations,
// per-channel s8 weights; ReLU/ReLU6 fused into it) on the selected quantized engine (onednn,
// fbgemm or qnnpack); activation scales and zero points come from min/max calibration of each
// value on calibration inputs (PyTorch's MinMaxObserver rule, 0 included in the range). Ops
// without a quantized kernel here (sigmoid, SE scaling, softmax, attention matmuls, GroupNorm,
// concat) run in fp32 on dequantized tensors, as in PyTorch's FX static quantization.
// This is LibTorch's int8 path, measured beside the LibTorch-free runtime's own int8 engine.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "leanseg/graph.h"

namespace leanseg {

// Quantized engines LibTorch was built with, in the order "auto" prefers them ("onednn",
// "fbgemm", "qnnpack").
std::vector<std::string> quantized_engines();

class LibTorchInt8Model {
 public:
  // `graph`: a model graph (model_graph); `calibration`: normalised [1, C, H, W] inputs (at
  // least one). `engine`: "auto" or one of quantized_engines(). Throws Error for an unknown or
  // unavailable engine, no calibration inputs, or an operator the executor does not know.
  LibTorchInt8Model(Graph graph, const std::vector<at::Tensor>& calibration, const std::string& engine = "auto");
  ~LibTorchInt8Model();
  LibTorchInt8Model(LibTorchInt8Model&&) noexcept;
  LibTorchInt8Model& operator=(LibTorchInt8Model&&) noexcept;

  at::Tensor forward(const at::Tensor& image) const;       // int8 convolutions → fp32 logits
  at::Tensor forward_fp32(const at::Tensor& image) const;  // the same graph, every op in fp32
  const std::string& engine() const;
  int quantized_convolutions() const;  // convolutions running on the quantized engine
  int float_convolutions() const;      // those the engine rejected (they stay fp32)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace leanseg
