// One oneDNN fp32 3x3 convolution (batch 1, stride 1, fused ReLU) per shape, timed with the
// direct NHWC kernels the runtime uses by default and with the Winograd F(4x4, 3x3) kernels on the
// blocked nChw16c layout they need (`leanseg-infer --winograd`). Median of --runs executions
// after 3 warm-ups, on oneDNN's OpenMP threads (OMP_NUM_THREADS; every core by default).
//   bench_winograd_convs [--runs N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <vector>

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
  std::printf("| map | in -> out | GFLOP | direct NHWC ms | Winograd ms | speed-up |\n|---|---|---|---|---|---|\n");
  for (const auto& sh : shapes) {
    const double gflop = 2.0 * sh[0] * sh[0] * sh[1] * sh[2] * 9 / 1e9;
    const double direct = median_ms(eng, stream, sh[0], sh[1], sh[2], dnnl::algorithm::convolution_direct, tag::nhwc, runs);
    const double wino =
        median_ms(eng, stream, sh[0], sh[1], sh[2], dnnl::algorithm::convolution_winograd, tag::nChw16c, runs);
    std::printf("| %d² | %d -> %d | %.2f | %.2f | %.2f | %.2fx |\n", sh[0], sh[1], sh[2], gflop, direct, wino,
                direct / wino);
  }
  return 0;
}
