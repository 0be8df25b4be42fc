// INT8 ONNX export in the QDQ form that ONNX Runtime, TensorRT and OpenCV read: conv weights
// stored as int8 behind DequantizeLinear, and (with calibration) conv input activations passed
// through QuantizeLinear → DequantizeLinear pairs. Torch-free.
#pragma once
#include <map>
#include <string>

#include "leanseg/graph.h"

namespace leanseg {

// A copy of `g` where every Conv/ConvTranspose weight W is replaced by
//   DequantizeLinear(W_quantized int8, W_scale [C], W_zero_point int8 [C] = 0, axis)
// with symmetric per-output-channel scales s_c = max|W_c| / 127 (axis 0 for Conv, 1 for
// ConvTranspose), so |W − Ŵ| ≤ s_c / 2. For every conv input value x found in
// `activation_absmax`, x is replaced (for the convs) by DequantizeLinear(QuantizeLinear(x)) with
// the symmetric per-tensor scale absmax / 127. The result needs opset ≥ 13 (per-axis scales).
Graph quantize_qdq(const Graph& g, const std::map<std::string, float>& activation_absmax = {});

}  // namespace leanseg
