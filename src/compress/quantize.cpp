// Weight quantization (C4): the framework seed's uniform formula and integer affine
// quantization, per tensor or per channel, plus straight-through fake quantization.
#include "compress/quantize.h"

#include <cmath>

#include "leanseg/error.h"

namespace leanseg {
namespace {

double levels(int bits) { return static_cast<double>((1 << bits) - 1); }  // 2^b − 1

// Shape that broadcasts a per-channel [C] vector along axis 0 of a tensor of rank `dim`.
std::vector<int64_t> channel_view(int64_t channels, int64_t dim) {
  std::vector<int64_t> shape(static_cast<size_t>(std::max<int64_t>(dim, 1)), 1);
  shape[0] = channels;
  return shape;
}

torch::Tensor broadcastable(const torch::Tensor& v, const AffineQuantized& q, int64_t dim) {
  return q.per_channel ? v.reshape(channel_view(v.size(0), dim)) : v.reshape({});
}

}  // namespace

void check_bits(int bits) {
  require(bits == 8 || bits == 4 || bits == 2, "unknown bit-width " + std::to_string(bits) + " (8, 4, 2)");
}

// seed-efficient-segmentation-framework.md §1.2.2, "Floating Point Quantization", lower
// precision (8, 4, 2 bit):  X_q = round(X × (2^b-1)) / (2^b-1)  — implemented as written.
torch::Tensor seed_uniform_quantize(const torch::Tensor& x, int bits) {
  check_bits(bits);
  const double n = levels(bits);
  return torch::round(x * n) / n;
}

double seed_uniform_error_bound(int bits) {
  check_bits(bits);
  return 0.5 / levels(bits);
}

AffineQuantized affine_quantize(const torch::Tensor& x, int bits, bool per_channel) {
  check_bits(bits);
  require(x.numel() > 0, "affine quantization: empty tensor");
  require(!per_channel || x.dim() >= 1, "affine quantization: per-channel needs a tensor with an axis 0");
  torch::NoGradGuard no_grad;
  const auto xf = x.detach().to(torch::kFloat32).contiguous();
  require(torch::isfinite(xf).all().item<bool>(), "affine quantization: the tensor has non-finite values");
  AffineQuantized q;
  q.bits = bits;
  q.per_channel = per_channel;
  torch::Tensor lo, hi;
  if (per_channel) {
    const auto rows = xf.reshape({xf.size(0), -1});
    lo = rows.amin(1), hi = rows.amax(1);
  } else {
    lo = xf.min().reshape({1}), hi = xf.max().reshape({1});
  }
  // Including 0 in the range keeps zeros (pruned weights) exact and z within [0, 2^b − 1].
  lo = lo.clamp_max(0), hi = hi.clamp_min(0);
  const double n = levels(bits);
  auto scale = (hi - lo) / n;
  scale = torch::where(scale > 0, scale, torch::ones_like(scale));  // an all-zero slice: any s works
  const auto zero = torch::round(-lo / scale).clamp(0, n);
  q.scale = scale.contiguous();
  q.zero_point = zero.to(torch::kUInt8).contiguous();
  const auto s = broadcastable(q.scale, q, xf.dim()), z = broadcastable(zero, q, xf.dim());
  q.codes = torch::clamp(torch::round(xf / s) + z, 0, n).to(torch::kUInt8).contiguous();
  return q;
}

torch::Tensor affine_dequantize(const AffineQuantized& q) {
  check_bits(q.bits);
  const int64_t dim = q.codes.dim();
  const auto s = broadcastable(q.scale.to(torch::kFloat32), q, dim);
  const auto z = broadcastable(q.zero_point.to(torch::kFloat32), q, dim);
  return (q.codes.to(torch::kFloat32) - z) * s;
}

torch::Tensor fake_quant_affine(const torch::Tensor& x, int bits, bool per_channel) {
  const auto xq = affine_dequantize(affine_quantize(x, bits, per_channel)).to(x.scalar_type());
  return x + (xq - x).detach();
}

torch::Tensor fake_quant_seed(const torch::Tensor& x, int bits) {
  return x + (seed_uniform_quantize(x.detach(), bits) - x).detach();
}

WeightStorage storage_for_quant(const std::string& quant, bool per_channel) {
  WeightStorage st;
  st.per_channel = per_channel;
  if (quant == "fp16" || quant == "bf16") {
    require(!per_channel, "--per-channel applies to --quant int8, int4 or int2, not " + quant);
    st.kind = quant == "fp16" ? "f16" : "bf16";
    return st;
  }
  if (quant.rfind("int", 0) == 0 && quant.size() > 3 && quant.size() <= 6 && quant.find_first_not_of("0123456789", 3) == std::string::npos) {
    const int bits = std::stoi(quant.substr(3));
    try {
      check_bits(bits);
    } catch (const Error& e) {
      throw Error("--quant " + quant + ": " + e.what());
    }
    st.kind = "affine" + std::to_string(bits);
    return st;
  }
  throw Error("--quant '" + quant + "': unknown value (fp16, bf16, int8, int4, int2, seed8, seed4, seed2)");
}

int seed_quant_bits(const std::string& quant) {
  if (quant.rfind("seed", 0) != 0) return 0;
  const std::string digits = quant.substr(4);
  require(!digits.empty() && digits.size() <= 2 && digits.find_first_not_of("0123456789") == std::string::npos,
          "--quant '" + quant + "': unknown value (fp16, bf16, int8, int4, int2, seed8, seed4, seed2)");
  const int bits = std::stoi(digits);
  try {
    check_bits(bits);
  } catch (const Error& e) {
    throw Error("--quant " + quant + ": " + e.what());
  }
  return bits;
}

int storage_bits(const std::string& kind) {
  if (kind == "affine8") return 8;
  if (kind == "affine4") return 4;
  if (kind == "affine2") return 2;
  return 0;
}

}  // namespace leanseg
