// Lowering of Conv and ConvTranspose: oneDNN (de)convolutions with their weights packed once, or
// the Winograd kernel's steps, with the residual add and activation that follow fused in.
#include <algorithm>
#include <cmath>

#include "engine_impl.h"
#include "leanseg/error.h"
#include "winograd.h"

namespace leanseg::runtime {

namespace {

// 127 / max |w| per output channel, in oneDNN's output-channel order (g-major when grouped).
// ONNX layouts: conv [O, I/g, kh, kw]; transposed conv [I, O/g, kh, kw].
std::vector<float> per_channel_weight_scales(const GraphTensor& w, bool transposed, int64_t groups) {
  const int64_t a = w.shape[0], b = w.shape[1], k = w.shape[2] * w.shape[3];
  const int64_t out = transposed ? b * groups : a;
  std::vector<float> absmax(out, 0.f);
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j) {
      const int64_t oc = transposed ? (i / (a / groups)) * b + j : i;
      for (int64_t t = 0; t < k; ++t) absmax[oc] = std::max(absmax[oc], std::abs(w.f32[(i * b + j) * k + t]));
    }
  std::vector<float> scales(out);
  for (int64_t c = 0; c < out; ++c) scales[c] = absmax[c] > 0 ? 127.f / absmax[c] : 1.f;
  return scales;
}

// True when, at input size `in` (NCHW), every tap of conv `n` but the centre one reads only
// padding: stride 1, an odd kernel, "same" padding and a dilation of at least the map's side
// on every axis the kernel spans. M1's ASPP branches of rates 12 and 18 on the 8x8 bottleneck
// of a 256x256 input are such convs: ~76 % of ASPP's multiply-adds there are zeros.
bool only_centre_tap_reads_the_map(const GraphNode& n, const ConvAttributes& attrs, const GraphTensor& w,
                                   const memory::dims& in) {
  if (n.op != "Conv" || w.shape.size() != 4) return false;
  const auto &pads = attrs.pads, &dil = attrs.dilations;
  if (attrs.strides != std::vector<int64_t>{1, 1}) return false;
  bool any_tap_dropped = false;
  for (int a = 0; a < 2; ++a) {
    const int64_t k = w.shape[2 + a], centre = (k - 1) / 2;
    if (k % 2 == 0 || pads[a] != centre * dil[a] || pads[a + 2] != centre * dil[a]) return false;
    if (k > 1 && dil[a] < in[2 + a]) return false;
    any_tap_dropped = any_tap_dropped || k > 1;
  }
  return any_tap_dropped;
}

// Such a conv is exactly a 1x1 conv with its centre tap's weights ([O, I/g, 1, 1]).
GraphTensor centre_tap_weights(const GraphTensor& w) {
  GraphTensor c;
  c.name = w.name + "#centre_tap";
  c.shape = {w.shape[0], w.shape[1], 1, 1};
  const int64_t kh = w.shape[2], kw = w.shape[3], taps = kh * kw, centre = (kh / 2) * kw + kw / 2;
  c.f32.resize(static_cast<size_t>(w.shape[0] * w.shape[1]));
  for (size_t i = 0; i < c.f32.size(); ++i) c.f32[i] = w.f32[i * taps + centre];
  return c;
}

// ... and that 1x1 conv's attributes (stride 1 already; no padding or dilation left to apply).
ConvAttributes centre_tap_attributes(const ConvAttributes& attrs) {
  return {attrs.groups, {1, 1}, {1, 1}, {0, 0, 0, 0}, {1, 1}};
}

}  // namespace

// Conv / ConvTranspose with its following residual Add and activation fused when nothing else
// reads the intermediate values. A conv reading a Concat that nothing else reads runs as one
// conv per concatenated input, each on its slice of the weights' input channels, accumulating
// into the same output (sum post-op): conv(concat(a, b)) = conv_a(a) + conv_b(b). The concat
// is never materialised, which saves its buffer (the largest at a U-Net's full-resolution
// skip) and its copy.
void Engine::Impl::lower_conv(size_t i, std::set<size_t>& fused) {
  const GraphNode& n = nodes[i];
  const bool transposed = n.op == "ConvTranspose";
  const GraphTensor* w = constants.count(n.inputs[1]) ? constants[n.inputs[1]] : nullptr;
  require(w && w->shape.size() == 4, where(n.name) + ": weights must be a constant 4-D tensor");
  GraphTensor* own = droppable(w->name, 1);  // read from the file, packed, then dropped again
  if (own && own->f32.empty()) fetch(*own);
  GraphTensor* derived = droppable_rewritten(w->name);
  const GraphTensor* b = n.inputs.size() > 2 && !n.inputs[2].empty() ? constants[n.inputs[2]] : nullptr;
  // The arena values whose channels, in order, make the conv's input; flagged: a deferred
  // DepthToSpace's input (Winograd convs only).
  std::vector<std::pair<int, bool>> parts;
  auto add_part = [&](const std::string& name) {
    auto deferred = deferred_depth_to_space.find(name);
    if (deferred != deferred_depth_to_space.end()) parts.push_back({deferred->second, true});
    else parts.push_back({arena_input(name), false});
  };
  auto split = split_concats.find(n.inputs[0]);
  if (split != split_concats.end())
    for (const auto& in : split->second) add_part(in);
  else
    add_part(n.inputs[0]);
  auto part_dims = [&](const std::pair<int, bool>& part) { return dims_read(part.first, part.second); };
  memory::dims xd = part_dims(parts[0]);
  for (size_t p = 1; p < parts.size(); ++p) xd[1] += part_dims(parts[p])[1];
  // int8 weight scales stay those of the whole kernel, as the exporter's fake quantization has them.
  const GraphTensor& file_weights = *w;
  ConvAttributes attrs = conv_attributes(n, w->shape);
  GraphTensor centre_weights;
  if (only_centre_tap_reads_the_map(n, attrs, *w, xd)) {
    centre_weights = centre_tap_weights(*w), attrs = centre_tap_attributes(attrs);
    w = &centre_weights;
  }
  const int64_t groups = attrs.groups;
  const auto &k = attrs.kernel, &st = attrs.strides, &pads = attrs.pads, &dil = attrs.dilations;
  const int64_t out_ch = transposed ? w->shape[1] * groups : w->shape[0];
  const int64_t in_ch = transposed ? w->shape[0] : w->shape[1] * groups;
  require(in_ch == xd[1], where(n.name) + ": weights expect " + std::to_string(in_ch) + " input channels, got " +
                              std::to_string(xd[1]));
  memory::dims od = {xd[0], out_ch, 0, 0};
  for (int a = 0; a < 2; ++a) {
    const int64_t ek = dil[a] * (k[a] - 1) + 1;
    od[2 + a] = transposed ? (xd[2 + a] - 1) * st[a] - pads[a] - pads[a + 2] + ek
                           : (xd[2 + a] + pads[a] + pads[a + 2] - ek) / st[a] + 1;
  }

  const Followers f = fusable_followers(i, od, fused);
  const std::string& out_name = f.out_name;
  const int sum_other = f.sum_other;
  const bool has_act = f.has_act, nonnegative_out = f.nonnegative_out;
  Activation act = f.act;

  // int8: a conv with at most 4 multiply-adds per input element (a 1x1 head to a few classes)
  // costs less than quantizing its f32 input would (a pass over 4 bytes in, 1 out per element), so
  // it reads that input as it is and runs in fp32 (M1's head: 0.82 ms of quantizing for 0.21 ms of conv).
  const int in_value = parts[0].first;
  const bool int8 = options.precision == Precision::I8 &&
                    !(parts.size() == 1 && values[in_value].md.data_type() == dt::f32 && values[in_value].quantized < 0 &&
                      out_ch * k[0] * k[1] / groups <= 4);
  // int8 output: when only convolutions read the result, write it quantized (scaled by its own
  // calibration) so the next conv reads it directly: no f32 round trip through memory. oneDNN
  // applies the output scale before the post-ops, so a clip's bounds scale with it. Convs split
  // over a concat accumulate in the output, which therefore stays f32.
  std::vector<int64_t> part_channels;
  for (const auto& part : parts) part_channels.push_back(part_dims(part)[1]);
  const bool winograd = winograd_applies(n, attrs, *w, part_channels, od);
  ConvOutput o{od, act_dt, 1.f};
  if (int8 && !winograd && sum_other < 0 && parts.size() == 1 && only_convs_read(out_name) &&
      !read_by_winograd_conv(out_name, od) &&
      (!has_act || act.algorithm != dnnl::algorithm::eltwise_logistic) && model.activation_absmax.count(out_name)) {
    o.type = nonnegative_out ? dt::u8 : dt::s8;
    o.scale = (nonnegative_out ? 255.f : 127.f) / std::max(model.activation_absmax.at(out_name), 1e-8f);
    if (has_act && act.algorithm == dnnl::algorithm::eltwise_clip) act.alpha *= o.scale, act.beta *= o.scale;
  }
  const std::vector<float> weight_scales =
      int8 ? per_channel_weight_scales(file_weights, transposed, groups) : std::vector<float>();
  const int out = add_value(out_name, od, false);
  values[out].nonnegative = nonnegative_out;
  values[out].qscale = o.scale;
  values[out].md = memory::desc(od, o.type, tag::nhwc);
  const int first_write = static_cast<int>(steps.size());  // the addend's copy or the conv
  if (winograd) {  // one step over every part
    if (sum_other >= 0) accumulate_into(out, sum_other, n.name);
    WinogradStep s = winograd_step(*w, b, parts, od, f);
    s.output = out;
    produce({n.name, std::move(s)}, out);
    values[out].first = first_write;
  } else {
    int64_t channel_offset = 0;
    for (size_t p = 0; p < parts.size(); ++p) {
      // Part 0 adds the fused residual (if any); later parts add to what earlier ones wrote.
      dnnl::post_ops post;
      if (p > 0 || sum_other >= 0) post.append_sum(1.f);
      if (has_act && p + 1 == parts.size()) post.append_eltwise(1.f, act.algorithm, act.alpha, act.beta);
      if (p == 0 && sum_other >= 0) accumulate_into(out, sum_other, n.name);
      PrimitiveStep s =
          conv_step(n, attrs, *w, p == 0 ? b : nullptr, parts[p].first, channel_offset, o, post, weight_scales);
      channel_offset += values[parts[p].first].dims[1];
      s.value_args.push_back({DNNL_ARG_DST, out});
      produce({n.name, std::move(s)}, out);
      values[out].first = first_write;
    }
  }
  if (own) drop(*own);
  if (derived) drop(*derived), rewritten_dropped = true;
}

// The Winograd step of a conv with weights `w` over `inputs` (arena values, flagged when read
// through DepthToSpace) with what fusable_followers took into it. Its weights stay in plain fp32 (the
// kernel transforms them into its scratch on each call).
WinogradStep Engine::Impl::winograd_step(const GraphTensor& w, const GraphTensor* b,
                                         const std::vector<std::pair<int, bool>>& inputs, const memory::dims& od,
                                         const Followers& f) {
  WinogradStep s;
  WinogradShape& shape = s.shape;
  shape.height = od[2], shape.width = od[3], shape.in_channels = w.shape[1], shape.out_channels = od[1];
  shape.threads = thread_count();
  shape.accumulate = f.sum_other >= 0;
  if (f.has_act && f.act.algorithm == dnnl::algorithm::eltwise_relu) shape.activation = WinogradActivation::Relu;
  if (f.has_act && f.act.algorithm == dnnl::algorithm::eltwise_clip) {
    shape.activation = WinogradActivation::Clip;
    shape.clip_min = f.act.alpha, shape.clip_max = f.act.beta;
  }
  s.weights = winograd_weight_layout(w.f32.data(), shape.out_channels, shape.in_channels);
  if (b) s.bias = b->f32;
  s.inputs = inputs;
  for (const auto& in : inputs) use(in.first);
  s.scratch_bytes = winograd_scratch_bytes(shape);
  weights += (s.weights.size() + s.bias.size()) * sizeof(float);
  flops += 2.0 * static_cast<double>(od[2] * od[3]) * static_cast<double>(shape.out_channels * shape.in_channels * 9);
  return s;
}

// The addend of a fused residual add becomes the conv's output before the conv runs: the
// output takes its bytes when it dies here, or a copy of it otherwise.
void Engine::Impl::accumulate_into(int out, int addend, const std::string& node) {
  if (values[addend].last <= static_cast<int>(steps.size()) && readers[values[addend].name] == 1 &&
      addend != value_of[model.graph.inputs[0].name]) {
    values[out].storage = addend;  // in place: the addend dies here
  } else {
    PrimitiveStep copy;  // the addend lives on: copy it into the output first
    copy.primitive = dnnl::reorder(dnnl::reorder::primitive_desc(cpu, values[addend].md, cpu, values[out].md));
    copy.value_args = {{DNNL_ARG_FROM, addend}, {DNNL_ARG_TO, out}};
    use(addend);
    produce({node + "#addend", std::move(copy)}, out);
  }
  use(addend);
}

// One oneDNN (de)convolution step reading `x`, which holds input channels
// [channel_offset, channel_offset + channels of x) of the node's weights; packs those weights.
PrimitiveStep Engine::Impl::conv_step(const GraphNode& n, const ConvAttributes& attrs, const GraphTensor& w, const GraphTensor* b,
                             int x, int64_t channel_offset, const ConvOutput& o, const dnnl::post_ops& post,
                             const std::vector<float>& weight_scales) {
  const bool transposed = n.op == "ConvTranspose";
  const bool int8 = !weight_scales.empty();  // lower_conv leaves them empty for a conv it runs in fp32
  const int64_t groups = attrs.groups;
  const auto &k = attrs.kernel, &st = attrs.strides, &pads = attrs.pads, &dil = attrs.dilations;
  const int64_t out_ch = o.dims[1], all_in = transposed ? w.shape[0] : w.shape[1] * groups;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  attr.set_post_ops(post);
  float src_scale = 1.f;
  int src = x;
  if (int8) {
    src = quantized_input(x, &src_scale);
    std::vector<float> out_scales(weight_scales.size());
    for (size_t c = 0; c < out_scales.size(); ++c) out_scales[c] = o.scale / (src_scale * weight_scales[c]);
    attr.set_output_scales(1 << 1, out_scales);  // dst axis 1 = output channels
  }
  const int64_t in_ch = values[x].dims[1];
  require(channel_offset == 0 || (groups == 1 && !transposed),
          where(n.name) + ": only a dense convolution can read a concatenation in parts");
  const memory::dims strides = {st[0], st[1]}, dilates = {dil[0] - 1, dil[1] - 1};
  const memory::dims pad_l = {pads[0], pads[1]}, pad_r = {pads[2], pads[3]};
  memory::dims wd = groups == 1 ? memory::dims{out_ch, in_ch, k[0], k[1]}
                                : memory::dims{groups, out_ch / groups, in_ch / groups, k[0], k[1]};
  const memory::desc w_any(wd, int8 ? dt::s8 : act_dt, tag::any), b_md({out_ch}, dt::f32, tag::a);
  const memory::desc src_md = values[src].md, dst_md(o.dims, o.type, tag::nhwc);
  PrimitiveStep s;
  memory::desc packed_w;
  // Convolution and transposed convolution share their descriptor's shape in oneDNN.
  auto create = [&](auto kind, dnnl::algorithm algorithm) {
    using Primitive = decltype(kind);
    const auto fwd = dnnl::prop_kind::forward_inference;
    auto d = b ? typename Primitive::desc(fwd, algorithm, src_md, w_any, b_md, dst_md, strides, dilates, pad_l, pad_r)
               : typename Primitive::desc(fwd, algorithm, src_md, w_any, dst_md, strides, dilates, pad_l, pad_r);
    typename Primitive::primitive_desc pd(d, attr, cpu);
    // oneDNN may accept a descriptor and then fail to generate the chosen kernel (seen: the
    // AVX512-BF16 and VNNI grouped convs with a sum and a logistic post-op, 4 channels per
    // group); its list holds further implementations, so take the next one that builds.
    for (;;) {
      try {
        s.primitive = Primitive(pd);
        break;
      } catch (const dnnl::error&) {
        if (!pd.next_impl()) throw;
      }
    }
    packed_w = pd.weights_desc();
    s.scratchpad = pd.scratchpad_desc();
  };
  try {
    if (transposed) create(dnnl::deconvolution_forward(), dnnl::algorithm::deconvolution_direct);
    else create(dnnl::convolution_forward(), dnnl::algorithm::convolution_direct);
  } catch (const dnnl::error& e) {
    throw Error(where(n.name) + ": oneDNN has no " + precision_name(options.precision) + " implementation (" + e.what() + ")");
  }
  // Weights: ONNX [O, I/g, kh, kw] (conv) or [I, O/g, kh, kw] (transposed) → the packed layout.
  // The plain weights are read in place (no copy) by the reorder that packs them.
  const tag user_tag = transposed ? (groups == 1 ? tag::iohw : tag::giohw) : (groups == 1 ? tag::oihw : tag::goihw);
  const memory::desc user_md(wd, dt::f32, user_tag);
  memory user_w(user_md, cpu, const_cast<float*>(w.f32.data())), packed(packed_w, cpu);
  if (in_ch != all_in) {  // a dense copy of the slice first
    const memory::desc all({out_ch, all_in, k[0], k[1]}, dt::f32, user_tag);
    memory view(all.submemory_desc(wd, {0, channel_offset, 0, 0}), cpu, const_cast<float*>(w.f32.data()));
    user_w = memory(user_md, cpu);
    dnnl::reorder(view, user_w).execute(stream, view, user_w);
  }
  if (int8) {  // s8 weights: scale each output channel (mask over the output-channel axes)
    dnnl::primitive_attr wattr;
    wattr.set_output_scales(groups == 1 ? 1 : 3, weight_scales);
    dnnl::reorder(dnnl::reorder::primitive_desc(cpu, user_md, cpu, packed_w, wattr)).execute(stream, user_w, packed);
  } else {
    dnnl::reorder(user_w, packed).execute(stream, user_w, packed);
  }
  s.fixed_args[DNNL_ARG_WEIGHTS] = packed;
  weights += packed_w.get_size();
  // Per output pixel of a conv (input pixel of a transposed conv): Cout x Cin/g x kh x kw MACs.
  const memory::dims& pixels = transposed ? values[x].dims : o.dims;
  flops += 2.0 * static_cast<double>(pixels[2] * pixels[3]) * static_cast<double>(out_ch * (in_ch / groups) * k[0] * k[1]);
  if (b) {
    s.fixed_args[DNNL_ARG_BIAS] = constant_memory(*b, {out_ch}, tag::a);
    if (int8) {  // oneDNN 2.x adds the bias to the accumulator before the output scale
      float* bias = static_cast<float*>(s.fixed_args[DNNL_ARG_BIAS].get_data_handle());
      for (int64_t c = 0; c < out_ch; ++c) bias[c] *= src_scale * weight_scales[c];
    }
    weights += b->f32.size() * sizeof(float);
  }
  s.value_args.push_back({DNNL_ARG_SRC, src});
  use(src);
  return s;
}

}  // namespace leanseg::runtime
