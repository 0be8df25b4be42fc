// The reference interpreter's convolutions: Conv and ConvTranspose as plain loops over NCHW.
#include <algorithm>

#include "runtime/reference_ops.h"

namespace leanseg::runtime::reference_ops {
namespace {

// Positions p in [0, count) with p·stride + offset inside [0, limit): the part of an output row
// (conv) or input row (transposed conv) whose kernel tap lands inside the other tensor.
struct Range {
  int64_t begin, end;
};
Range valid_positions(int64_t offset, int64_t stride, int64_t limit, int64_t count) {
  int64_t begin = 0;
  while (begin < count && begin * stride + offset < 0) ++begin;
  int64_t end = begin;
  while (end < count && end * stride + offset < limit) ++end;
  return {begin, end};
}

// --- convolutions ----------------------------------------------------------------------------

struct ConvGeometry {
  Shape strides, pads, dilations;  // pads: top, left, bottom, right
};

ConvGeometry conv_geometry(const Op& op, const Shape& weight) {
  if (op.has("kernel_shape"))
    op.check(op.attr_ints("kernel_shape", {}) == Shape{weight[2], weight[3]},
             "kernel_shape " + shape_text(op.attr_ints("kernel_shape", {})) + " disagrees with the weight " +
                 shape_text(weight));
  op.check(!op.has("auto_pad"), "auto_pad is not supported (pads must be explicit)");
  return {op.spatial("strides", {1, 1}, 1), op.spatial("pads", {0, 0, 0, 0}, 0), op.spatial("dilations", {1, 1}, 1)};
}

void check_bias(const Op& op, const PlainTensor* bias, int64_t channels) {
  op.check(!bias || bias->shape == Shape{channels},
           "bias should have shape [" + std::to_string(channels) + "], got " + shape_text(bias ? bias->shape : Shape{}));
}

}  // namespace

// Conv: x [N, C, H, W], w [M, C/group, kH, kW], optional bias [M]. For each output channel the
// products of every input channel and kernel tap are summed into one output plane.
PlainTensor conv(const Op& op) {
  const PlainTensor& x = op.floats(0);
  const PlainTensor& w = op.floats(1);
  const PlainTensor* bias = op.optional_floats(2);
  op.check(x.shape.size() == 4, "input should be 4-D [N, C, H, W], got " + shape_text(x.shape));
  op.check(w.shape.size() == 4, "weight should be 4-D, got " + shape_text(w.shape));
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t M = w.shape[0], Cg = w.shape[1], KH = w.shape[2], KW = w.shape[3];
  const int64_t group = op.attr_int("group", 1);
  op.check(group > 0 && C == Cg * group && M % group == 0,
           "input " + shape_text(x.shape) + ", weight " + shape_text(w.shape) + " and group " +
               std::to_string(group) + " do not fit together");
  check_bias(op, bias, M);
  const ConvGeometry g = conv_geometry(op, w.shape);
  const int64_t OH = (H + g.pads[0] + g.pads[2] - g.dilations[0] * (KH - 1) - 1) / g.strides[0] + 1;
  const int64_t OW = (W + g.pads[1] + g.pads[3] - g.dilations[1] * (KW - 1) - 1) / g.strides[1] + 1;
  op.check(OH > 0 && OW > 0, "the kernel does not fit in the padded input " + shape_text(x.shape));

  PlainTensor y = zeros({N, M, OH, OW});
  std::vector<double> plane(static_cast<size_t>(OH * OW));
  const int64_t out_per_group = M / group;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m) {
      std::fill(plane.begin(), plane.end(), bias ? bias->f32[m] : 0.0);
      const int64_t first_channel = (m / out_per_group) * Cg;
      for (int64_t c = 0; c < Cg; ++c) {
        const float* xp = x.f32.data() + ((n * C + first_channel + c) * H) * W;
        const float* wp = w.f32.data() + ((m * Cg + c) * KH) * KW;
        for (int64_t i = 0; i < KH; ++i)
          for (int64_t j = 0; j < KW; ++j) {
            const double wv = wp[i * KW + j];
            const int64_t row_offset = i * g.dilations[0] - g.pads[0], col_offset = j * g.dilations[1] - g.pads[1];
            const Range rows = valid_positions(row_offset, g.strides[0], H, OH);
            const Range cols = valid_positions(col_offset, g.strides[1], W, OW);
            for (int64_t oh = rows.begin; oh < rows.end; ++oh) {
              const float* in_row = xp + (oh * g.strides[0] + row_offset) * W + col_offset;
              double* out_row = plane.data() + oh * OW;
              for (int64_t ow = cols.begin; ow < cols.end; ++ow) out_row[ow] += wv * in_row[ow * g.strides[1]];
            }
          }
      }
      std::copy(plane.begin(), plane.end(), y.f32.begin() + (n * M + m) * OH * OW);
    }
  return y;
}

// ConvTranspose: x [N, C, H, W], w [C, M/group, kH, kW], optional bias [M]. Each input pixel
// scatters its value times the kernel into the output (the adjoint of Conv).
PlainTensor conv_transpose(const Op& op) {
  const PlainTensor& x = op.floats(0);
  const PlainTensor& w = op.floats(1);
  const PlainTensor* bias = op.optional_floats(2);
  op.check(x.shape.size() == 4, "input should be 4-D [N, C, H, W], got " + shape_text(x.shape));
  op.check(w.shape.size() == 4, "weight should be 4-D, got " + shape_text(w.shape));
  op.check(!op.has("output_shape"), "output_shape is not supported (give pads)");
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t Mg = w.shape[1], KH = w.shape[2], KW = w.shape[3];
  const int64_t group = op.attr_int("group", 1);
  op.check(group > 0 && C % group == 0 && w.shape[0] == C,
           "input " + shape_text(x.shape) + ", weight " + shape_text(w.shape) + " and group " +
               std::to_string(group) + " do not fit together");
  const int64_t M = Mg * group, Cg = C / group;
  check_bias(op, bias, M);
  const ConvGeometry g = conv_geometry(op, w.shape);
  const Shape out_pad = op.spatial("output_padding", {0, 0}, 0);
  const int64_t OH = (H - 1) * g.strides[0] - g.pads[0] - g.pads[2] + g.dilations[0] * (KH - 1) + 1 + out_pad[0];
  const int64_t OW = (W - 1) * g.strides[1] - g.pads[1] - g.pads[3] + g.dilations[1] * (KW - 1) + 1 + out_pad[1];
  op.check(OH > 0 && OW > 0, "the output would be empty");

  PlainTensor y = zeros({N, M, OH, OW});
  std::vector<double> acc(static_cast<size_t>(M * OH * OW));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t m = 0; m < M; ++m)
      std::fill(acc.begin() + m * OH * OW, acc.begin() + (m + 1) * OH * OW, bias ? bias->f32[m] : 0.0);
    for (int64_t c = 0; c < C; ++c) {
      const float* xp = x.f32.data() + ((n * C + c) * H) * W;
      for (int64_t ml = 0; ml < Mg; ++ml) {
        double* out = acc.data() + ((c / Cg) * Mg + ml) * OH * OW;
        const float* wp = w.f32.data() + ((c * Mg + ml) * KH) * KW;
        for (int64_t i = 0; i < KH; ++i)
          for (int64_t j = 0; j < KW; ++j) {
            const double wv = wp[i * KW + j];
            const int64_t row_offset = i * g.dilations[0] - g.pads[0], col_offset = j * g.dilations[1] - g.pads[1];
            const Range rows = valid_positions(row_offset, g.strides[0], OH, H);
            const Range cols = valid_positions(col_offset, g.strides[1], OW, W);
            for (int64_t ih = rows.begin; ih < rows.end; ++ih) {
              double* out_row = out + (ih * g.strides[0] + row_offset) * OW + col_offset;
              const float* in_row = xp + ih * W;
              for (int64_t iw = cols.begin; iw < cols.end; ++iw) out_row[iw * g.strides[1]] += wv * in_row[iw];
            }
          }
      }
    }
    std::copy(acc.begin(), acc.end(), y.f32.begin() + n * M * OH * OW);
  }
  return y;
}

}  // namespace leanseg::runtime::reference_ops
