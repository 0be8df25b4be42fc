// The reference interpreter's operators (reference.h), shared by its files: the node being
// evaluated (Op), tensor helpers, and the operators defined outside reference.cpp. Private to
// src/runtime.
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "leanseg/error.h"
#include "runtime/reference.h"

namespace leanseg::runtime::reference_ops {

using Shape = std::vector<int64_t>;

inline int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

inline std::string shape_text(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Row-major strides of a shape.
inline Shape strides_of(const Shape& s) {
  Shape st(s.size(), 1);
  for (int64_t i = static_cast<int64_t>(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
  return st;
}

// One node being evaluated: operand and attribute access with errors that name the node.
class Op {
 public:
  Op(const GraphNode& node, const std::vector<const PlainTensor*>& inputs) : node_(node), inputs_(inputs) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error("reference: " + node_.op + " node '" + node_.name + "': " + what);
  }
  void check(bool cond, const std::string& what) const {
    if (!cond) fail(what);
  }

  const PlainTensor* optional(size_t i) const { return i < inputs_.size() ? inputs_[i] : nullptr; }
  const PlainTensor& input(size_t i) const {
    const PlainTensor* t = optional(i);
    check(t != nullptr, "input " + std::to_string(i + 1) + " is missing");
    return *t;
  }
  const PlainTensor& floats(size_t i) const {
    const PlainTensor& t = input(i);
    check(!t.is_int, "input " + std::to_string(i + 1) + " should be float, got int64");
    return t;
  }
  const PlainTensor& ints(size_t i) const {
    const PlainTensor& t = input(i);
    check(t.is_int, "input " + std::to_string(i + 1) + " should be int64, got float");
    return t;
  }
  const PlainTensor* optional_floats(size_t i) const {
    const PlainTensor* t = optional(i);
    check(!t || !t->is_int, "input " + std::to_string(i + 1) + " should be float, got int64");
    return t;
  }

  bool has(const std::string& attr) const { return node_.attribute(attr) != nullptr; }
  int64_t attr_int(const std::string& name, int64_t fallback) const {
    return attr_of(name, GraphAttribute::Kind::Int) ? node_.attribute(name)->i : fallback;
  }
  float attr_float(const std::string& name, float fallback) const {
    return attr_of(name, GraphAttribute::Kind::Float) ? node_.attribute(name)->f : fallback;
  }
  Shape attr_ints(const std::string& name, Shape fallback) const {
    return attr_of(name, GraphAttribute::Kind::Ints) ? node_.attribute(name)->ints : fallback;
  }
  // 2-D spatial attribute (strides, dilations: 2 values; pads: 4) with every value checked.
  Shape spatial(const std::string& name, Shape fallback, int64_t min_value) const {
    Shape v = attr_ints(name, fallback);
    check(v.size() == fallback.size(), "attribute '" + name + "' should have " + std::to_string(fallback.size()) +
                                           " values, got " + shape_text(v));
    for (int64_t x : v) check(x >= min_value, "attribute '" + name + "' has an invalid value in " + shape_text(v));
    return v;
  }
  // Normalises a possibly negative axis against `rank`.
  int64_t axis(int64_t a, size_t rank) const {
    const int64_t r = static_cast<int64_t>(rank);
    check(a >= -r && a < r, "axis " + std::to_string(a) + " is out of range for rank " + std::to_string(r));
    return a < 0 ? a + r : a;
  }

 private:
  bool attr_of(const std::string& name, GraphAttribute::Kind kind) const {
    const GraphAttribute* a = node_.attribute(name);
    check(!a || a->kind == kind, "attribute '" + name + "' has the wrong kind");
    return a != nullptr;
  }
  const GraphNode& node_;
  const std::vector<const PlainTensor*>& inputs_;
};

inline PlainTensor zeros(Shape shape) {
  PlainTensor t;
  t.f32.assign(static_cast<size_t>(numel_of(shape)), 0.0f);
  t.shape = std::move(shape);
  return t;
}

template <class T>
const std::vector<T>& data(const PlainTensor& t) {
  if constexpr (std::is_same_v<T, float>) return t.f32;
  else return t.i64;
}
template <class T>
std::vector<T>& data(PlainTensor& t) {
  if constexpr (std::is_same_v<T, float>) return t.f32;
  else return t.i64;
}

inline PlainTensor like(const PlainTensor& source_type, Shape shape) {
  PlainTensor t;
  t.is_int = source_type.is_int;
  if (t.is_int) t.i64.resize(static_cast<size_t>(numel_of(shape)));
  else t.f32.resize(static_cast<size_t>(numel_of(shape)));
  t.shape = std::move(shape);
  return t;
}

// reference_conv.cpp
PlainTensor conv(const Op& op);
PlainTensor conv_transpose(const Op& op);

}  // namespace leanseg::runtime::reference_ops
