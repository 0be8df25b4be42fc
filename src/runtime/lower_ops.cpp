// Lowering of every op but the convolutions (lower_conv.cpp): one oneDNN primitive or one of the
// engine's kernels per node, and the small non-image ops on the host.
#include <algorithm>

#include "engine_impl.h"
#include "leanseg/error.h"
#include "reference.h"

namespace leanseg::runtime {

void Engine::Impl::lower_binary(const GraphNode& n) {
  require(n.inputs.size() == 2, where(n.name) + ": expected two inputs");
  const bool c0 = constants.count(n.inputs[0]), c1 = constants.count(n.inputs[1]);
  auto is_host = [&](const std::string& v) { return value_of.count(v) && values[value_of[v]].host; };
  if ((c0 || is_host(n.inputs[0])) && (c1 || is_host(n.inputs[1]))) return lower_host(n);
  const auto alg = n.op == "Add" ? dnnl::algorithm::binary_add : dnnl::algorithm::binary_mul;
  PrimitiveStep s;
  memory::desc src1_md;
  int a = -1, b = -1;
  if (c0 || c1) {
    a = arena_input(n.inputs[c0 ? 1 : 0]);
    const GraphTensor& t = *constants[n.inputs[c0 ? 0 : 1]];
    memory::dims d(4, 1);  // numpy broadcasting: align trailing axes
    for (size_t k = 0; k < t.shape.size(); ++k) d[4 - t.shape.size() + k] = t.shape[k];
    require(t.shape.size() <= 4, where(n.name) + ": constant has more than 4 axes");
    s.fixed_args[DNNL_ARG_SRC_1] = constant_memory(t, d, tag::abcd);
    src1_md = s.fixed_args[DNNL_ARG_SRC_1].get_desc();
  } else {
    a = arena_input(n.inputs[0]);
    b = arena_input(n.inputs[1]);
    if (values[a].dims != values[b].dims) {
      // src0 must have the full shape; the other broadcasts.
      memory::dims full = values[a].dims;
      for (size_t k = 0; k < full.size(); ++k) full[k] = std::max(full[k], values[b].dims[k]);
      if (values[a].dims != full) std::swap(a, b);
      require(values[a].dims == full, where(n.name) + ": neither operand has the broadcast shape");
    }
    src1_md = values[b].md;
    s.value_args.push_back({DNNL_ARG_SRC_1, b});
    use(b);
  }
  const memory::desc dst_md = act_md(values[a].dims);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::binary::primitive_desc pd(dnnl::binary::desc(alg, values[a].md, src1_md, dst_md), attr, cpu);
  s.primitive = dnnl::binary(pd);
  s.scratchpad = pd.scratchpad_desc();
  s.value_args.push_back({DNNL_ARG_SRC_0, a});
  use(a);
  const int out = add_value(n.outputs[0], values[a].dims, false);
  // SE gates (sigmoid) times non-negative features stay non-negative.
  values[out].nonnegative = alg == dnnl::algorithm::binary_mul && b >= 0 && values[a].nonnegative && values[b].nonnegative;
  s.value_args.push_back({DNNL_ARG_DST, out});
  produce({n.name, std::move(s)}, out);
}

void Engine::Impl::lower_eltwise(const GraphNode& n) {
  if (value_of.count(n.inputs[0]) && values[value_of[n.inputs[0]]].host) return lower_host(n);
  const int x = arena_input(n.inputs[0]);
  std::vector<Activation> chain;
  Activation act;
  if (activation_of(n, &act)) {
    chain.push_back(act);
  } else {  // HardSigmoid = clip(αx + β, 0, 1)
    chain.push_back({dnnl::algorithm::eltwise_linear, float_attr(n, "alpha", 0.2f), float_attr(n, "beta", 0.5f)});
    chain.push_back({dnnl::algorithm::eltwise_clip, 0.f, 1.f});
  }
  const int out = add_value(n.outputs[0], values[x].dims, false);
  values[out].nonnegative = n.op != "Clip" || float_attr(n, "min", 0) >= 0;
  for (size_t c = 0; c < chain.size(); ++c) {
    PrimitiveStep s;
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::eltwise_forward::primitive_desc pd(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, chain[c].algorithm, values[x].md, chain[c].alpha,
                                    chain[c].beta),
        attr, cpu);
    s.primitive = dnnl::eltwise_forward(pd);
    s.scratchpad = pd.scratchpad_desc();
    s.value_args = {{DNNL_ARG_SRC, c == 0 ? x : out}, {DNNL_ARG_DST, out}};
    use(x);
    const int first = values[out].first;
    produce({n.name, std::move(s)}, out);
    if (c > 0) values[out].first = first;
  }
}

void Engine::Impl::lower_pool(const GraphNode& n) {
  const int x = arena_input(n.inputs[0]);
  const memory::dims xd = values[x].dims;
  const bool global = n.op == "GlobalAveragePool";
  const auto k = global ? std::vector<int64_t>{xd[2], xd[3]} : ints_attr(n, "kernel_shape", {});
  require(k.size() == 2, where(n.name) + ": MaxPool needs a 2-D kernel_shape");
  const auto st = global ? std::vector<int64_t>{1, 1} : ints_attr(n, "strides", {1, 1});
  const auto pads = global ? std::vector<int64_t>{0, 0, 0, 0} : ints_attr(n, "pads", {0, 0, 0, 0});
  const memory::dims od = {xd[0], xd[1], (xd[2] + pads[0] + pads[2] - k[0]) / st[0] + 1,
                           (xd[3] + pads[1] + pads[3] - k[1]) / st[1] + 1};
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::pooling_forward::primitive_desc pd(
      dnnl::pooling_forward::desc(dnnl::prop_kind::forward_inference,
                                  global ? dnnl::algorithm::pooling_avg_exclude_padding : dnnl::algorithm::pooling_max,
                                  values[x].md, act_md(od), {st[0], st[1]}, {k[0], k[1]}, {pads[0], pads[1]},
                                  {pads[2], pads[3]}),
      attr, cpu);
  PrimitiveStep s;
  s.primitive = dnnl::pooling_forward(pd);
  s.scratchpad = pd.scratchpad_desc();
  const int out = add_value(n.outputs[0], od, false);
  values[out].md = act_md(od);
  values[out].nonnegative = values[x].nonnegative;
  s.value_args = {{DNNL_ARG_SRC, x}, {DNNL_ARG_DST, out}};
  use(x);
  produce({n.name, std::move(s)}, out);
}

void Engine::Impl::lower_concat(const GraphNode& n) {
  int64_t axis = int_attr(n, "axis", 1);
  if (read_in_parts_by_convs(n)) {
    split_concats[n.outputs[0]] = n.inputs;  // each lower_conv reads the inputs directly
    return;
  }
  auto channel_concat_dims = [&] {
    memory::dims d = values[arena_input(n.inputs[0])].dims;
    for (size_t k = 1; k < n.inputs.size(); ++k) d[1] += values[arena_input(n.inputs[k])].dims[1];
    return d;
  };
  if (options.precision == Precision::I8 && (axis == 1 || axis == -3) && only_convs_read(n.outputs[0]) &&
      model.activation_absmax.count(n.outputs[0]) && !read_by_winograd_conv(n.outputs[0], channel_concat_dims()))
    return lower_quantizing_concat(n);
  PrimitiveStep s;
  std::vector<memory::desc> srcs;
  memory::dims od;
  for (size_t k = 0; k < n.inputs.size(); ++k) {
    const int v = arena_input(n.inputs[k]);
    if (axis < 0) axis += static_cast<int64_t>(values[v].dims.size());
    if (k == 0) od = values[v].dims;
    else od[axis] += values[v].dims[axis];
    srcs.push_back(values[v].md);
    s.value_args.push_back({DNNL_ARG_MULTIPLE_SRC + static_cast<int>(k), v});
    use(v);
  }
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::concat::primitive_desc pd(act_md(od), static_cast<int>(axis), srcs, cpu, attr);
  s.primitive = dnnl::concat(pd);
  s.scratchpad = pd.scratchpad_desc();
  const int out = add_value(n.outputs[0], od, false);
  values[out].nonnegative = true;
  for (const auto& [arg, v] : s.value_args) values[out].nonnegative = values[out].nonnegative && values[v].nonnegative;
  s.value_args.push_back({DNNL_ARG_DST, out});
  produce({n.name, std::move(s)}, out);
}

// int8, a channel concat that only convolutions read (more than one, else it runs in parts):
// built directly in u8/s8 at its own calibrated scale, one reorder per input into its channel
// slice, instead of an f32 concat and a quantizing copy of it (at a U-Net's full-resolution
// decoder stage: three passes over the largest map become one pass over its inputs).
void Engine::Impl::lower_quantizing_concat(const GraphNode& n) {
  std::vector<int> inputs;
  memory::dims od;
  bool nonnegative = true;
  for (const auto& name : n.inputs) {
    inputs.push_back(arena_input(name));
    const memory::dims& d = values[inputs.back()].dims;
    if (od.empty()) od = d;
    else od[1] += d[1];
    nonnegative = nonnegative && values[inputs.back()].nonnegative;
  }
  const float scale = (nonnegative ? 255.f : 127.f) / std::max(model.activation_absmax.at(n.outputs[0]), 1e-8f);
  const int out = add_value(n.outputs[0], od, false);
  values[out].md = memory::desc(od, nonnegative ? dt::u8 : dt::s8, tag::nhwc);
  values[out].nonnegative = nonnegative;
  values[out].qscale = scale;
  const int first_write = static_cast<int>(steps.size());
  int64_t offset = 0;
  for (int v : inputs) {
    const memory::desc slice = values[out].md.submemory_desc(values[v].dims, {0, offset, 0, 0});
    offset += values[v].dims[1];
    const bool quantized = values[v].md.data_type() == dt::u8 || values[v].md.data_type() == dt::s8;
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    attr.set_output_scales(0, {quantized ? scale / values[v].qscale : scale});
    dnnl::reorder::primitive_desc pd(cpu, values[v].md, cpu, slice, attr);
    PrimitiveStep s;
    s.primitive = dnnl::reorder(pd);
    s.scratchpad = pd.scratchpad_desc();
    s.value_args = {{DNNL_ARG_FROM, v}, {DNNL_ARG_TO, out}};
    s.views = {{DNNL_ARG_TO, slice}};
    use(v);
    produce({n.name + "#q8", std::move(s)}, out);
    values[out].first = first_write;
  }
}

// DepthToSpace(2, DCR) in NHWC is a pure permutation of bytes: [N, H, W, (dy, dx, C)] →
// [N, H, dy, W, dx, C]. One oneDNN reorder between two strided 6-D views of the two buffers.
void Engine::Impl::lower_depth_to_space(const GraphNode& n) {
  require(int_attr(n, "blocksize", 0) == 2, where(n.name) + ": only DepthToSpace with blocksize 2 is supported");
  const int x = arena_input(n.inputs[0]);
  const memory::dims xd = values[x].dims;
  const int64_t N = xd[0], C = xd[1] / 4, H = xd[2], W = xd[3];
  // Not built when a Winograd conv reads it (a U-Net decoder's upsampled half): the kernel reads
  // the low-resolution map through the permutation, and one full-resolution map is never stored.
  if (read_by_winograd_concat(n.outputs[0], {N, C, 2 * H, 2 * W})) {
    deferred_depth_to_space[n.outputs[0]] = x;
    return;
  }
  const dt type = values[x].md.data_type();
  const memory::dims view = {N, H, W, 2, 2, C};
  memory::desc from(view, type, memory::dims{H * W * 4 * C, W * 4 * C, 4 * C, 2 * C, C, 1});
  memory::desc to(view, type, memory::dims{4 * H * W * C, 4 * W * C, 2 * C, 2 * W * C, C, 1});
  PrimitiveStep s;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::reorder::primitive_desc pd(cpu, from, cpu, to, attr);
  s.primitive = dnnl::reorder(pd);
  s.scratchpad = pd.scratchpad_desc();
  const int out = add_value(n.outputs[0], {N, C, 2 * H, 2 * W}, false);
  values[out].md = memory::desc({N, C, 2 * H, 2 * W}, type, tag::nhwc);
  values[out].nonnegative = values[x].nonnegative;
  values[out].qscale = values[x].qscale;
  s.value_args = {{DNNL_ARG_FROM, x}, {DNNL_ARG_TO, out}};
  s.views = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
  use(x);
  produce({n.name, std::move(s)}, out);
}

// Depthwise kernel-2 stride-2 transposed conv with the engine's own f32 kernel; other
// precisions convert around it (a memory pass each way, far cheaper than oneDNN's kernel).
void Engine::Impl::lower_depthwise_upsample(const GraphNode& n) {
  const GraphTensor* w = constants.at(n.inputs[1]);
  const GraphTensor* b = n.inputs.size() > 2 && !n.inputs[2].empty() ? constants.at(n.inputs[2]) : nullptr;
  const int x = converted(arena_input(n.inputs[0]), dt::f32);
  const memory::dims xd = values[x].dims;
  const int64_t C = xd[1];
  require(w->shape[0] == C, where(n.name) + ": weights for " + std::to_string(w->shape[0]) + " channels, input has " +
                                std::to_string(C));
  UpsampleStep s;
  s.weights.resize(4 * C);
  for (int64_t c = 0; c < C; ++c)
    for (int d = 0; d < 4; ++d) s.weights[d * C + c] = w->f32[c * 4 + d];
  if (b) s.bias = b->f32;
  weights += (s.weights.size() + s.bias.size()) * sizeof(float);
  flops += 2.0 * static_cast<double>(xd[2] * xd[3] * C) * 4;  // depthwise, kernel 2x2
  const memory::dims od = {xd[0], C, 2 * xd[2], 2 * xd[3]};
  const bool direct = act_dt == dt::f32;
  const int y = add_value(direct ? n.outputs[0] : n.outputs[0] + "#f32", od, false);
  values[y].md = memory::desc(od, dt::f32, tag::nhwc);
  s.input = x;
  s.output = y;
  use(x);
  produce({n.name, std::move(s)}, y);
  if (!direct) {
    const int out = converted(y, act_dt);
    values[out].name = n.outputs[0];
    value_of[n.outputs[0]] = out;
  }
}

// Small non-image ops on host tensors with the reference implementation. Output shapes are
// found by running the op once on zeros now (Shape and Reshape depend only on shapes).
void Engine::Impl::lower_host(const GraphNode& n) {
  HostOpStep s;
  s.node = &n;
  for (const auto& in : n.inputs) s.inputs.push_back(host_input(in));
  std::vector<const PlainTensor*> ins;  // after every host_input: `values` may have grown
  for (int v : s.inputs) ins.push_back(&values[v].tensor);
  std::vector<PlainTensor> probe = reference_op(n, ins);
  require(probe.size() == 1, where(n.name) + ": host ops must have one output");
  const int out = add_value(n.outputs[0], to_dims(probe[0].shape), true);
  values[out].tensor = std::move(probe[0]);
  s.output = out;
  produce({n.name, std::move(s)}, out);
}

}  // namespace leanseg::runtime
