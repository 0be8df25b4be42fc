// The engine's values: adding them to the plan, and the copies a step needs of one (imported
// into the arena, quantized to int8, mirrored on the host, converted to another type).
#include <algorithm>

#include "engine_impl.h"
#include "leanseg/error.h"
#include "leanseg/limits.h"

namespace leanseg::runtime {

int Engine::Impl::add_value(const std::string& name, memory::dims dims, bool host) {
  // Every planned activation is bounded, so sizes multiply without overflow and a kernel larger
  // than its padded input (an empty output) is refused here, not by a crash further on.
  if (!host) {
    bool ok = dims.size() == 4 && dims[0] == 1 && dims[1] >= 1 && dims[1] <= kMaxChannels;
    for (size_t a = 2; ok && a < 4; ++a) ok = dims[a] >= 1 && dims[a] <= kMaxImageSide;
    require(ok, where(name) + ": the planned output shape " + dims_text(dims) + " is empty or too large (limits: " +
                    std::to_string(kMaxChannels) + " channels, " + std::to_string(kMaxImageSide) + " pixels per side)");
  }
  Value v;
  v.name = name;
  v.dims = std::move(dims);
  v.host = host;
  if (!host) v.md = act_md(v.dims);
  v.storage = static_cast<int>(values.size());
  v.first = v.last = static_cast<int>(steps.size());
  values.push_back(std::move(v));
  value_of[name] = static_cast<int>(values.size()) - 1;
  return static_cast<int>(values.size()) - 1;
}

int Engine::Impl::produce(Step step, int out) {
  steps.push_back(std::move(step));
  values[out].first = static_cast<int>(steps.size()) - 1;
  values[out].last = std::max(values[out].last, values[out].first);
  return out;
}

int Engine::Impl::arena_input(const std::string& name) {
  auto it = value_of.find(name);
  require(it != value_of.end(), where(name) + ": value is not computed by the engine (a constant?)");
  int v = it->second;
  if (!values[v].host) {
    use(v);
    return v;
  }
  // A host tensor read by a oneDNN step: copy it into the arena once (NCHW float → NHWC act).
  if (values[v].imported >= 0) {
    use(values[v].imported);
    return values[v].imported;
  }
  memory::dims dims = values[v].dims;
  require(dims.size() == 4, where(name) + ": a " + std::to_string(dims.size()) + "-D tensor cannot feed an image op");
  const int a = add_value(name + "#arena", dims, false);
  values[a].role = Value::Role::Imported, values[a].copy_of = v;
  values[v].imported = a;
  use(v);
  produce({values[a].name, CopyStep{v, a}}, a);  // host → arena
  use(a);
  return a;
}

// The calibrated absmax gives the scale: q = round(x · 255/absmax) in u8 for non-negative values,
// round(x · 127/absmax) in s8 otherwise. One copy per value, shared by every conv reading it.
int Engine::Impl::quantized_input(int v, float* scale) {
  if (values[v].md.data_type() == dt::u8 || values[v].md.data_type() == dt::s8) {  // already quantized
    *scale = values[v].qscale;
    use(v);
    return v;
  }
  const std::string& name = values[v].name;
  // A host tensor imported into the arena has the calibration of the tensor.
  const int calibrated = values[v].role == Value::Role::Imported ? values[v].copy_of : v;
  auto a = model.activation_absmax.find(values[calibrated].name);
  require(a != model.activation_absmax.end(),
          where(name) + ": no int8 calibration for this value (re-export with --calibrate)");
  const bool u8 = values[v].nonnegative;
  *scale = (u8 ? 255.f : 127.f) / std::max(a->second, 1e-8f);
  if (values[v].quantized >= 0) {
    use(values[v].quantized);
    return values[v].quantized;
  }
  const std::string qname = name + "#q8";
  const int q = add_value(qname, values[v].dims, false);
  values[q].role = Value::Role::Quantized, values[q].copy_of = v;
  values[v].quantized = q;
  values[q].md = memory::desc(values[v].dims, u8 ? dt::u8 : dt::s8, tag::nhwc);
  dnnl::primitive_attr attr;
  attr.set_output_scales(0, {*scale});
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::reorder::primitive_desc pd(cpu, values[v].md, cpu, values[q].md, attr);
  PrimitiveStep s;
  s.primitive = dnnl::reorder(pd);
  s.scratchpad = pd.scratchpad_desc();
  s.value_args = {{DNNL_ARG_FROM, v}, {DNNL_ARG_TO, q}};
  use(v);
  produce({qname, std::move(s)}, q);
  use(q);
  return q;
}

int Engine::Impl::host_input(const std::string& name) {
  auto it = value_of.find(name);
  if (it == value_of.end()) {
    auto c = constants.find(name);
    require(c != constants.end(), where(name) + ": unknown value");
    // Constants read by host ops: wrap once as a host value.
    const GraphTensor& t = *c->second;
    const int v = add_value(name, to_dims(t.shape), true);
    values[v].tensor = PlainTensor::of(t);
    values[v].last = 1 << 30;  // not in the arena; lifetime irrelevant
    return v;
  }
  const int v = it->second;
  if (!values[v].host && !values[v].mirrored) {
    values[v].mirrored = true;
    values[v].tensor.shape = std::vector<int64_t>(values[v].dims.begin(), values[v].dims.end());
    values[v].tensor.f32.assign(memory::desc(values[v].dims, dt::f32, tag::nchw).get_size() / sizeof(float), 0.f);
    use(v);
    steps.push_back({name + "#host", CopyStep{v, v}});  // arena → host mirror
  }
  use(v);
  return v;
}

int Engine::Impl::converted(int v, dt type) {
  if (values[v].md.data_type() == type) return v;
  return copied(v, values[v].name + "#" + std::to_string(static_cast<int>(type)),
                memory::desc(values[v].dims, type, tag::nhwc));
}

// A new arena value `name` holding `v` reordered into `md` (int8 values scaled back to float).
int Engine::Impl::copied(int v, const std::string& name, const memory::desc& md) {
  const int c = add_value(name, values[v].dims, false);
  values[c].role = Value::Role::Converted, values[c].copy_of = v;
  values[c].md = md;
  values[c].nonnegative = values[v].nonnegative;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (values[v].qscale != 1.f && md.data_type() != values[v].md.data_type())
    attr.set_output_scales(0, {1.f / values[v].qscale});  // int8 → float
  dnnl::reorder::primitive_desc pd(cpu, values[v].md, cpu, md, attr);
  PrimitiveStep s;
  s.primitive = dnnl::reorder(pd);
  s.scratchpad = pd.scratchpad_desc();
  s.value_args = {{DNNL_ARG_FROM, v}, {DNNL_ARG_TO, c}};
  use(v);
  produce({name, std::move(s)}, c);
  use(c);
  return c;
}

}  // namespace leanseg::runtime
