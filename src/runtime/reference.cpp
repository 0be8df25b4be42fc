#include "runtime/reference.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>

#include "leanseg/error.h"
#include "runtime/reference_ops.h"

namespace leanseg::runtime {
namespace {

using namespace reference_ops;

// --- elementwise -------------------------------------------------------------------------------

PlainTensor unary(const Op& op, const std::function<float(float)>& f) {
  const PlainTensor& x = op.floats(0);
  PlainTensor y = x;
  for (float& v : y.f32) v = f(v);
  return y;
}

// numpy broadcasting: shapes aligned on the right, each axis equal or 1.
Shape broadcast_shape(const Op& op, const Shape& a, const Shape& b) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    op.check(da == db || da == 1 || db == 1, "shapes " + shape_text(a) + " and " + shape_text(b) + " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Strides of `s` seen through the broadcast to `out`: 0 on axes it is repeated along.
Shape broadcast_strides(const Shape& s, const Shape& out) {
  const Shape own = strides_of(s);
  Shape st(out.size(), 0);
  const size_t lead = out.size() - s.size();
  for (size_t i = 0; i < s.size(); ++i) st[lead + i] = s[i] == 1 ? 0 : own[i];
  return st;
}

PlainTensor binary(const Op& op, const std::function<float(float, float)>& f) {
  const PlainTensor& a = op.floats(0);
  const PlainTensor& b = op.floats(1);
  const Shape shape = broadcast_shape(op, a.shape, b.shape);
  const Shape sa = broadcast_strides(a.shape, shape), sb = broadcast_strides(b.shape, shape);
  PlainTensor y = zeros(shape);
  const int64_t rank = static_cast<int64_t>(shape.size());
  Shape index(shape.size(), 0);
  int64_t ia = 0, ib = 0;
  for (float& out : y.f32) {
    out = f(a.f32[ia], b.f32[ib]);
    // Odometer step over the output index, moving both input offsets along.
    for (int64_t d = rank - 1; d >= 0; --d) {
      ++index[d], ia += sa[d], ib += sb[d];
      if (index[d] < shape[d]) break;
      ia -= sa[d] * shape[d], ib -= sb[d] * shape[d], index[d] = 0;
    }
  }
  return y;
}

// --- shape operators ---------------------------------------------------------------------------

template <class T>
void concat_into(const std::vector<const PlainTensor*>& parts, int64_t axis, PlainTensor& y) {
  const int64_t outer = numel_of(Shape(y.shape.begin(), y.shape.begin() + axis));
  const int64_t inner = numel_of(Shape(y.shape.begin() + axis + 1, y.shape.end()));
  auto out = data<T>(y).begin();
  for (int64_t o = 0; o < outer; ++o)
    for (const PlainTensor* p : parts) {
      const int64_t chunk = p->shape[axis] * inner;
      const auto begin = data<T>(*p).begin() + o * chunk;
      out = std::copy(begin, begin + chunk, out);
    }
}

PlainTensor concat(const Op& op, size_t count) {
  op.check(count > 0, "has no inputs");
  op.check(op.has("axis"), "needs an 'axis' attribute");
  std::vector<const PlainTensor*> parts;
  for (size_t i = 0; i < count; ++i) parts.push_back(&op.input(i));
  const PlainTensor& first = *parts[0];
  const int64_t axis = op.axis(op.attr_int("axis", 0), first.shape.size());
  Shape shape = first.shape;
  shape[axis] = 0;
  for (const PlainTensor* p : parts) {
    Shape expected = first.shape, got = p->shape;
    op.check(p->is_int == first.is_int && got.size() == expected.size(),
             "inputs differ in type or rank: " + shape_text(first.shape) + " and " + shape_text(got));
    expected[axis] = got[axis];
    op.check(got == expected, "input shapes " + shape_text(first.shape) + " and " + shape_text(got) +
                                  " differ outside axis " + std::to_string(axis));
    shape[axis] += got[axis];
  }
  PlainTensor y = like(first, shape);
  if (y.is_int) concat_into<int64_t>(parts, axis, y);
  else concat_into<float>(parts, axis, y);
  return y;
}

// Reshape: 0 copies the input's dimension (unless allowzero), -1 is inferred.
PlainTensor reshape(const Op& op) {
  const PlainTensor& x = op.input(0);
  const PlainTensor& target = op.ints(1);
  op.check(target.shape.size() == 1, "shape should be 1-D, got " + shape_text(target.shape));
  const bool allow_zero = op.attr_int("allowzero", 0) != 0;
  Shape shape = target.i64;
  int64_t inferred = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && !allow_zero) {
      op.check(i < x.shape.size(), "shape " + shape_text(target.i64) + " copies axis " + std::to_string(i) +
                                       " that the input " + shape_text(x.shape) + " does not have");
      shape[i] = x.shape[i];
    }
    if (shape[i] == -1) {
      op.check(inferred < 0, "shape " + shape_text(target.i64) + " has more than one -1");
      inferred = static_cast<int64_t>(i);
      continue;
    }
    op.check(shape[i] >= 0, "shape " + shape_text(target.i64) + " has a negative dimension");
    known *= shape[i];
  }
  if (inferred >= 0) {
    op.check(known > 0 && x.numel() % known == 0,
             "cannot infer the -1 of " + shape_text(target.i64) + " for input " + shape_text(x.shape));
    shape[inferred] = x.numel() / known;
  }
  op.check(numel_of(shape) == x.numel(),
           "cannot reshape " + shape_text(x.shape) + " to " + shape_text(target.i64) + " (" + shape_text(shape) + ")");
  PlainTensor y = x;
  y.shape = shape;
  return y;
}

PlainTensor shape_of(const Op& op) {
  const PlainTensor& x = op.input(0);
  const int64_t rank = static_cast<int64_t>(x.shape.size());
  auto clamp_axis = [&](int64_t a) { return std::clamp(a < 0 ? a + rank : a, int64_t{0}, rank); };
  const int64_t start = clamp_axis(op.attr_int("start", 0)), end = clamp_axis(op.attr_int("end", rank));
  PlainTensor y;
  y.is_int = true;
  if (start < end) y.i64.assign(x.shape.begin() + start, x.shape.begin() + end);
  y.shape = {static_cast<int64_t>(y.i64.size())};
  return y;
}

template <class T>
void transpose_into(const PlainTensor& x, const Shape& perm, PlainTensor& y) {
  const Shape in_strides = strides_of(x.shape);
  Shape strides(perm.size());  // input stride of each output axis
  for (size_t i = 0; i < perm.size(); ++i) strides[i] = in_strides[perm[i]];
  const int64_t rank = static_cast<int64_t>(perm.size());
  Shape index(perm.size(), 0);
  int64_t offset = 0;
  for (T& out : data<T>(y)) {
    out = data<T>(x)[offset];
    for (int64_t d = rank - 1; d >= 0; --d) {
      ++index[d], offset += strides[d];
      if (index[d] < y.shape[d]) break;
      offset -= strides[d] * y.shape[d], index[d] = 0;
    }
  }
}

PlainTensor transpose(const Op& op) {
  const PlainTensor& x = op.input(0);
  Shape reversed(x.shape.size());
  for (size_t i = 0; i < reversed.size(); ++i) reversed[i] = static_cast<int64_t>(reversed.size() - 1 - i);
  const Shape perm = op.attr_ints("perm", reversed);
  std::set<int64_t> seen(perm.begin(), perm.end());
  op.check(perm.size() == x.shape.size() && seen.size() == perm.size() && *seen.begin() == 0 &&
               *seen.rbegin() == static_cast<int64_t>(perm.size()) - 1,
           "perm " + shape_text(perm) + " is not a permutation of the axes of " + shape_text(x.shape));
  Shape shape(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) shape[i] = x.shape[perm[i]];
  PlainTensor y = like(x, shape);
  if (y.is_int) transpose_into<int64_t>(x, perm, y);
  else transpose_into<float>(x, perm, y);
  return y;
}

// --- pooling and normalisation -----------------------------------------------------------------

PlainTensor max_pool(const Op& op) {
  const PlainTensor& x = op.floats(0);
  op.check(x.shape.size() == 4, "input should be 4-D [N, C, H, W], got " + shape_text(x.shape));
  op.check(op.attr_int("ceil_mode", 0) == 0, "ceil_mode is not supported");
  op.check(op.attr_int("storage_order", 0) == 0, "storage_order 1 is not supported");
  op.check(!op.has("auto_pad"), "auto_pad is not supported (pads must be explicit)");
  op.check(op.has("kernel_shape"), "needs a 'kernel_shape' attribute");
  const Shape k = op.spatial("kernel_shape", {1, 1}, 1), s = op.spatial("strides", {1, 1}, 1);
  const Shape p = op.spatial("pads", {0, 0, 0, 0}, 0), d = op.spatial("dilations", {1, 1}, 1);
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t OH = (H + p[0] + p[2] - d[0] * (k[0] - 1) - 1) / s[0] + 1;
  const int64_t OW = (W + p[1] + p[3] - d[1] * (k[1] - 1) - 1) / s[1] + 1;
  op.check(OH > 0 && OW > 0, "the kernel does not fit in the padded input " + shape_text(x.shape));
  PlainTensor y = zeros({N, C, OH, OW});
  float* out = y.f32.data();
  for (int64_t plane = 0; plane < N * C; ++plane) {
    const float* xp = x.f32.data() + plane * H * W;
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        float best = -std::numeric_limits<float>::infinity();
        for (int64_t i = 0; i < k[0]; ++i)
          for (int64_t j = 0; j < k[1]; ++j) {
            const int64_t ih = oh * s[0] - p[0] + i * d[0], iw = ow * s[1] - p[1] + j * d[1];
            if (ih >= 0 && ih < H && iw >= 0 && iw < W) best = std::max(best, xp[ih * W + iw]);
          }
        *out++ = best;
      }
  }
  return y;
}

PlainTensor global_average_pool(const Op& op) {
  const PlainTensor& x = op.floats(0);
  op.check(x.shape.size() >= 3, "input should be [N, C, spatial...], got " + shape_text(x.shape));
  const int64_t planes = x.shape[0] * x.shape[1], area = x.numel() / std::max<int64_t>(planes, 1);
  Shape shape(x.shape.size(), 1);
  shape[0] = x.shape[0], shape[1] = x.shape[1];
  PlainTensor y = zeros(shape);
  for (int64_t i = 0; i < planes; ++i) {
    double sum = 0;
    for (int64_t j = 0; j < area; ++j) sum += x.f32[i * area + j];
    y.f32[i] = static_cast<float>(sum / static_cast<double>(area));
  }
  return y;
}

// y = scale·(x − mean)/√(var + ε) + bias per (n, c) over the spatial axes (population variance).
PlainTensor instance_norm(const Op& op) {
  const PlainTensor& x = op.floats(0);
  const PlainTensor& scale = op.floats(1);
  const PlainTensor& bias = op.floats(2);
  op.check(x.shape.size() >= 3, "input should be [N, C, spatial...], got " + shape_text(x.shape));
  const int64_t N = x.shape[0], C = x.shape[1], area = numel_of(Shape(x.shape.begin() + 2, x.shape.end()));
  op.check(scale.shape == Shape{C} && bias.shape == Shape{C},
           "scale " + shape_text(scale.shape) + " and bias " + shape_text(bias.shape) + " should be [" +
               std::to_string(C) + "]");
  op.check(area > 0, "input " + shape_text(x.shape) + " has no spatial elements");
  const double eps = op.attr_float("epsilon", 1e-5f);
  PlainTensor y = zeros(x.shape);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const float* xp = x.f32.data() + (n * C + c) * area;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < area; ++i) mean += xp[i];
      mean /= static_cast<double>(area);
      for (int64_t i = 0; i < area; ++i) var += (xp[i] - mean) * (xp[i] - mean);
      var /= static_cast<double>(area);
      const double k = scale.f32[c] / std::sqrt(var + eps);
      float* yp = y.f32.data() + (n * C + c) * area;
      for (int64_t i = 0; i < area; ++i) yp[i] = static_cast<float>((xp[i] - mean) * k + bias.f32[c]);
    }
  return y;
}

// Softmax over one axis (opset-13 semantics), max-subtracted.
PlainTensor softmax(const Op& op) {
  const PlainTensor& x = op.floats(0);
  op.check(!x.shape.empty(), "input is a scalar");
  const int64_t axis = op.axis(op.attr_int("axis", -1), x.shape.size());
  const int64_t outer = numel_of(Shape(x.shape.begin(), x.shape.begin() + axis));
  const int64_t len = x.shape[axis], inner = numel_of(Shape(x.shape.begin() + axis + 1, x.shape.end()));
  PlainTensor y = zeros(x.shape);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      const int64_t base = o * len * inner + in;
      double top = -std::numeric_limits<double>::infinity(), sum = 0;
      for (int64_t i = 0; i < len; ++i) top = std::max<double>(top, x.f32[base + i * inner]);
      for (int64_t i = 0; i < len; ++i) sum += std::exp(x.f32[base + i * inner] - top);
      for (int64_t i = 0; i < len; ++i)
        y.f32[base + i * inner] = static_cast<float>(std::exp(x.f32[base + i * inner] - top) / sum);
    }
  return y;
}

// MatMul of tensors of rank >= 2: [..., M, K] × [..., K, N], batch axes broadcast numpy-style.
PlainTensor matmul(const Op& op) {
  const PlainTensor& a = op.floats(0);
  const PlainTensor& b = op.floats(1);
  op.check(a.shape.size() >= 2 && b.shape.size() >= 2,
           "inputs should have rank >= 2, got " + shape_text(a.shape) + " and " + shape_text(b.shape));
  const int64_t M = a.shape[a.shape.size() - 2], K = a.shape.back(), N = b.shape.back();
  op.check(b.shape[b.shape.size() - 2] == K,
           "inner dimensions of " + shape_text(a.shape) + " and " + shape_text(b.shape) + " differ");
  const Shape batch_a(a.shape.begin(), a.shape.end() - 2), batch_b(b.shape.begin(), b.shape.end() - 2);
  const Shape batch = broadcast_shape(op, batch_a, batch_b);
  const Shape sa = broadcast_strides(batch_a, batch), sb = broadcast_strides(batch_b, batch);
  Shape shape = batch;
  shape.push_back(M), shape.push_back(N);
  PlainTensor y = zeros(shape);
  std::vector<double> row(static_cast<size_t>(N));
  const Shape batch_strides = strides_of(batch);
  for (int64_t k = 0; k < numel_of(batch); ++k) {
    int64_t ia = 0, ib = 0;  // matrix index into a and b
    for (size_t d = 0; d < batch.size(); ++d) {
      const int64_t i = (k / batch_strides[d]) % batch[d];
      ia += i * sa[d], ib += i * sb[d];
    }
    const float* ap = a.f32.data() + ia * M * K;
    const float* bp = b.f32.data() + ib * K * N;
    for (int64_t i = 0; i < M; ++i) {
      std::fill(row.begin(), row.end(), 0.0);
      for (int64_t j = 0; j < K; ++j) {
        const double av = ap[i * K + j];
        for (int64_t n = 0; n < N; ++n) row[n] += av * bp[j * N + n];
      }
      std::copy(row.begin(), row.end(), y.f32.begin() + (k * M + i) * N);
    }
  }
  return y;
}

float sigmoid(float v) { return static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(v)))); }

}  // namespace

int64_t PlainTensor::numel() const { return numel_of(shape); }

PlainTensor PlainTensor::floats(std::vector<int64_t> shape, std::vector<float> values) {
  PlainTensor t;
  require(static_cast<int64_t>(values.size()) == numel_of(shape),
          "PlainTensor: " + std::to_string(values.size()) + " values for shape " + shape_text(shape));
  t.shape = std::move(shape);
  t.f32 = std::move(values);
  return t;
}

PlainTensor PlainTensor::ints(std::vector<int64_t> shape, std::vector<int64_t> values) {
  PlainTensor t;
  require(static_cast<int64_t>(values.size()) == numel_of(shape),
          "PlainTensor: " + std::to_string(values.size()) + " values for shape " + shape_text(shape));
  t.shape = std::move(shape);
  t.i64 = std::move(values);
  t.is_int = true;
  return t;
}

PlainTensor PlainTensor::of(const GraphTensor& t) {
  return t.type == TensorType::F32 ? floats(t.shape, t.f32) : ints(t.shape, t.i64);
}

std::vector<PlainTensor> reference_op(const GraphNode& node, const std::vector<const PlainTensor*>& inputs) {
  const Op op(node, inputs);
  const std::string& t = node.op;
  if (t == "Conv") return {conv(op)};
  if (t == "ConvTranspose") return {conv_transpose(op)};
  if (t == "Relu") return {unary(op, [](float v) { return v > 0 ? v : 0.0f; })};
  if (t == "Sigmoid") return {unary(op, sigmoid)};
  if (t == "HardSigmoid") {
    const float alpha = op.attr_float("alpha", 0.2f), beta = op.attr_float("beta", 0.5f);
    return {unary(op, [=](float v) { return std::max(0.0f, std::min(1.0f, alpha * v + beta)); })};
  }
  if (t == "Add") return {binary(op, [](float a, float b) { return a + b; })};
  if (t == "Mul") return {binary(op, [](float a, float b) { return a * b; })};
  if (t == "Concat") return {concat(op, inputs.size())};
  if (t == "MaxPool") return {max_pool(op)};
  if (t == "GlobalAveragePool") return {global_average_pool(op)};
  if (t == "InstanceNormalization") return {instance_norm(op)};
  if (t == "Reshape") return {reshape(op)};
  if (t == "Shape") return {shape_of(op)};
  if (t == "Transpose") return {transpose(op)};
  if (t == "Softmax") return {softmax(op)};
  if (t == "MatMul") return {matmul(op)};
  op.fail("operator " + t + " is not supported by the reference interpreter");
}

std::map<std::string, PlainTensor> run_reference(const Graph& g, const std::map<std::string, PlainTensor>& inputs) {
  std::map<std::string, PlainTensor> values;
  for (const auto& entry : inputs) {
    const std::string& name = entry.first;  // a structured binding cannot be captured in C++17 (clang refuses)
    const auto it = std::find_if(g.inputs.begin(), g.inputs.end(), [&](const GraphValue& v) { return v.name == name; });
    require(it != g.inputs.end(), "reference: '" + name + "' is not an input of graph '" + g.name + "'");
  }
  for (const auto& v : g.inputs) {
    const auto it = inputs.find(v.name);
    require(it != inputs.end(), "reference: graph '" + g.name + "' needs input '" + v.name + "'");
    const Shape& s = it->second.shape;
    bool fits = s.size() == v.shape.size();
    for (size_t i = 0; fits && i < s.size(); ++i) fits = v.shape[i] < 0 || v.shape[i] == s[i];
    require(fits, "reference: input '" + v.name + "' has shape " + shape_text(s) + ", the graph expects " +
                      shape_text(v.shape));
    values[v.name] = it->second;
  }
  for (const auto& t : g.initializers) values[t.name] = PlainTensor::of(t);

  for (const auto& node : g.nodes) {
    std::vector<const PlainTensor*> args;
    for (const auto& in : node.inputs) {
      if (in.empty()) {
        args.push_back(nullptr);  // omitted optional input
        continue;
      }
      const auto it = values.find(in);
      require(it != values.end(), "reference: " + node.op + " node '" + node.name + "' reads undefined value '" + in + "'");
      args.push_back(&it->second);
    }
    std::vector<PlainTensor> outs = reference_op(node, args);
    require(outs.size() == node.outputs.size(), "reference: " + node.op + " node '" + node.name + "' should have " +
                                                    std::to_string(outs.size()) + " outputs");
    for (size_t i = 0; i < outs.size(); ++i) values[node.outputs[i]] = std::move(outs[i]);
  }
  for (const auto& t : g.initializers) values.erase(t.name);
  return values;
}

}  // namespace leanseg::runtime
