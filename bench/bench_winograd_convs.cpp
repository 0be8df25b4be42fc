// One fp32 3x3 convolution (batch 1, stride 1, fused ReLU) per unet-32 shape, three ways: oneDNN's
// direct NHWC kernels (the runtime with --no-winograd), oneDNN's Winograd F(4x4, 3x3) kernels on
// the blocked nChw16c layout they need (what the runtime used before it had its own), and the
// runtime's own NHWC Winograd kernel (src/runtime/winograd.h, its weight transform included, as
// the engine calls it), with its largest difference from the direct result. Median of --runs
// executions after 3 warm-ups, on OpenMP threads (OMP_NUM_THREADS; 2 for the own kernel if unset).
//   bench_winograd_convs [--runs N]
#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <dnnl.hpp>
#include <random>
#include <vector>

#include "runtime/winograd.h"

namespace {

using dnnl::memory;
using tag = memory::format_tag;

double median_ms(dnnl::engine& eng, dnnl::stream& stream, int size, int in_ch, int out_ch, dnnl::algorithm alg,
                 tag layout, int runs) {
  const memory::desc src({1, in_ch, size, size}, memory::data_type::f32, layout);
  const memory::desc dst({1, out_ch, size, size}, memory::data_type::f32, layout);
  const memory::desc wei({out_ch, in_ch, 3, 3}, memory::data_type::f32, tag::any);
  dnnl::post_ops post;
  post.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(post);
  const dnnl::convolution_forward::primitive_desc pd(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, src, wei, dst, {1, 1}, {1, 1}, {1, 1}),
      attr, eng);
  memory s(src, eng), w(pd.weights_desc(), eng), d(dst, eng);
  std::memset(s.get_data_handle(), 0, src.get_size());
  std::memset(w.get_data_handle(), 0, pd.weights_desc().get_size());
  dnnl::convolution_forward conv(pd);
  std::vector<double> ms;
  for (int i = 0; i < runs + 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    conv.execute(stream, {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, d}});
    stream.wait();
    if (i >= 3) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// A float buffer 64-byte aligned, as the engine's arena places maps and scratch (a malloc'ed
// block is 16-byte aligned: every 64-byte vector access would straddle two cache lines).
struct AlignedFloats {
  std::vector<float> storage;
  float* data;
  explicit AlignedFloats(size_t n) : storage(n + 16) {
    data = storage.data() + (16 - reinterpret_cast<uintptr_t>(storage.data()) / sizeof(float) % 16) % 16;
  }
};

// The engine's own NHWC Winograd kernel (src/runtime/winograd.h) on the same shape, fused ReLU;
// `max_diff` receives its largest difference from oneDNN's direct kernel on random data.
double own_winograd_ms(dnnl::engine& eng, dnnl::stream& stream, int size, int in_ch, int out_ch, int runs,
                       double* max_diff) {
  using leanseg::runtime::WinogradShape;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  const size_t x_size = size_t(size) * size * in_ch, y_size = size_t(size) * size * out_ch;
  AlignedFloats x(x_size), y(y_size);
  std::vector<float> w(size_t(out_ch) * in_ch * 9), bias(out_ch);
  for (size_t i = 0; i < x_size; ++i) x.data[i] = uni(rng);
  for (auto& v : w) v = uni(rng) * 0.1f;
  for (auto& v : bias) v = uni(rng);
  WinogradShape s;
  s.height = s.width = size, s.in_channels = in_ch, s.out_channels = out_ch;
  s.threads = std::max(1, std::atoi(std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS") : "2"));
  s.activation = leanseg::runtime::WinogradActivation::Relu;
  AlignedFloats scratch(leanseg::runtime::winograd_scratch_bytes(s) / sizeof(float));
  const std::vector<float> u = leanseg::runtime::winograd_weight_layout(w.data(), out_ch, in_ch);
  const leanseg::runtime::WinogradSource src{x.data, in_ch, false};
  std::vector<double> ms;
  for (int i = 0; i < runs + 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    leanseg::runtime::winograd_conv3x3(s, &src, 1, u.data(), bias.data(), y.data, scratch.data);
    if (i >= 3) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  // oneDNN's direct kernel on the same data, for the difference.
  const memory::desc src_md({1, in_ch, size, size}, memory::data_type::f32, tag::nhwc);
  const memory::desc dst_md({1, out_ch, size, size}, memory::data_type::f32, tag::nhwc);
  const memory::desc w_md({out_ch, in_ch, 3, 3}, memory::data_type::f32, tag::oihw);
  const memory::desc b_md({out_ch}, memory::data_type::f32, tag::a);
  dnnl::post_ops post;
  post.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(post);
  const dnnl::convolution_forward::primitive_desc pd(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md,
                                      w_md, b_md, dst_md, {1, 1}, {1, 1}, {1, 1}),
      attr, eng);
  std::vector<float> ref(y_size);
  memory ms_(src_md, eng, x.data), mw(w_md, eng, w.data()), mb(b_md, eng, bias.data()), md(dst_md, eng, ref.data());
  dnnl::convolution_forward(pd).execute(stream, {{DNNL_ARG_SRC, ms_}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_BIAS, mb}, {DNNL_ARG_DST, md}});
  stream.wait();
  *max_diff = 0;
  for (size_t i = 0; i < y_size; ++i) *max_diff = std::max(*max_diff, double(std::abs(y.data[i] - ref[i])));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 25;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--runs") == 0) runs = std::max(1, std::atoi(argv[i + 1]));
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(eng);
  // unet-32's 3x3 convs at a 256x256 input: map size, input and output channels.
  const int shapes[][3] = {{256, 32, 32},  {256, 64, 32},  {128, 64, 64},  {128, 128, 64}, {64, 128, 128},
                           {64, 256, 128}, {32, 256, 256}, {32, 512, 256}, {16, 512, 512}, {16, 256, 512}};
  std::printf("| map | in -> out | GFLOP | direct NHWC ms | oneDNN Winograd ms | speed-up | own Winograd ms | speed-up | max diff |\n"
              "|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& sh : shapes) {
    const double gflop = 2.0 * sh[0] * sh[0] * sh[1] * sh[2] * 9 / 1e9;
    const double direct = median_ms(eng, stream, sh[0], sh[1], sh[2], dnnl::algorithm::convolution_direct, tag::nhwc, runs);
    const double wino =
        median_ms(eng, stream, sh[0], sh[1], sh[2], dnnl::algorithm::convolution_winograd, tag::nChw16c, runs);
    double diff = 0;
    const double own = own_winograd_ms(eng, stream, sh[0], sh[1], sh[2], runs, &diff);
    std::printf("| %d² | %d -> %d | %.2f | %.2f | %.2f | %.2fx | %.2f | %.2fx | %.1e |\n", sh[0], sh[1], sh[2], gflop,
                direct, wino, direct / wino, own, direct / own, diff);
  }
  return 0;
}
