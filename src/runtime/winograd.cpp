#include "winograd.h"

#include <omp.h>

#include <algorithm>

// The arithmetic is written once over GCC vector types of L floats and compiled three times, for
// AVX-512 (L = 16, one zmm), AVX2 with FMA (L = 8, one ymm) and baseline x86-64 (L = 4, SSE),
// each instance in a function built for that instruction set; one is picked at load time, so the
// same binary runs on every x86-64 CPU. (A single 16-float type compiled for AVX2 went through
// the stack for every operation: M1 took 385 ms instead of 141 on direct convs, on a Zen 1.)
// The helpers are always inlined into the workers and take their instruction set.
#define LS_INLINE static inline __attribute__((always_inline))

namespace leanseg::runtime {
namespace {

// One block of tiles: tiles [first_tile, first_tile + tiles) of the map; tile_block is the
// stride of V and M (the tiles of a full block).
struct Block {
  const WinogradShape* shape;
  const WinogradSource* sources;
  int source_count;
  const float* u;
  const float* bias;
  float* dst;
  int64_t first_tile, tiles, tile_block, tiles_across;
};

template <int L> struct Vec;  // vec: L floats; unaligned: the same, for unaligned access
template <> struct Vec<16> {
  typedef float vec __attribute__((vector_size(64)));
  typedef float unaligned __attribute__((vector_size(64), aligned(4)));
};
template <> struct Vec<8> {
  typedef float vec __attribute__((vector_size(32)));
  typedef float unaligned __attribute__((vector_size(32), aligned(4)));
};
template <> struct Vec<4> {
  typedef float vec __attribute__((vector_size(16)));
  typedef float unaligned __attribute__((vector_size(16), aligned(4)));
};

template <class V> LS_INLINE V load(const float* p) {
  return *reinterpret_cast<const typename Vec<sizeof(V) / 4>::unaligned*>(p);
}
template <class V> LS_INLINE void store(float* p, V v) { *reinterpret_cast<typename Vec<sizeof(V) / 4>::unaligned*>(p) = v; }
template <class V> LS_INLINE V splat(float f) { return V{} + f; }

// The 1-D transforms, applied to rows and then to columns. `s`: distance between the values.
// Input: B^T d for d0..d5.
template <class V>
LS_INLINE void input_1d(const V* d, int s, V* o, int os) {
  const V d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  o[0] = d0 * 4.f - d2 * 5.f + d4;
  o[os] = (d3 + d4) - (d1 + d2) * 4.f;
  o[2 * os] = (d4 - d3) + (d1 - d2) * 4.f;
  o[3 * os] = (d4 - d2) + (d3 - d1) * 2.f;
  o[4 * os] = (d4 - d2) + (d1 - d3) * 2.f;
  o[5 * os] = d1 * 4.f - d3 * 5.f + d5;
}
// Output: A^T m for m0..m5.
template <class V>
LS_INLINE void output_1d(const V* m, int s, V* o, int os) {
  const V s12 = m[s] + m[2 * s], d12 = m[s] - m[2 * s], s34 = m[3 * s] + m[4 * s], d34 = m[3 * s] - m[4 * s];
  o[0] = m[0] + s12 + s34;
  o[os] = d12 + d34 * 2.f;
  o[2 * os] = s12 + s34 * 4.f;
  o[3 * os] = d12 + d34 * 8.f + m[5 * s];
}


// Weights: G g for g0..g2 (6 values).
template <class V>
LS_INLINE void weight_1d(const V* g, int s, V* o, int os) {
  const V g0 = g[0], g1 = g[s], g2 = g[2 * s];
  const V even = g0 * (1.f / 24) + g2 * (1.f / 6), odd = g1 * (1.f / 12);
  o[0] = g0 * 0.25f;
  o[os] = (g0 + g1 + g2) * (-1.f / 6);
  o[2 * os] = (g0 - g1 + g2) * (-1.f / 6);
  o[3 * os] = even + odd;
  o[4 * os] = even - odd;
  o[5 * os] = g2;
}

// V[p][t][ci] for the block's tiles: each 6x6 input patch (zeros outside the map) transformed.
template <int L>
LS_INLINE void transform_inputs(const Block& b, float* v) {
  typedef typename Vec<L>::vec V;
  const WinogradShape& s = *b.shape;
  const int64_t H = s.height, W = s.width, Cin = s.in_channels, T = b.tile_block;
  for (int64_t t = 0; t < b.tiles; ++t) {
    const int64_t tile = b.first_tile + t;
    const int64_t y0 = (tile / b.tiles_across) * 4 - 1, x0 = (tile % b.tiles_across) * 4 - 1;
    const bool inside = y0 >= 0 && x0 >= 0 && y0 + 6 <= H && x0 + 6 <= W;
    int64_t channel_base = 0;
    for (int k = 0; k < b.source_count; ++k) {
      const WinogradSource& src = b.sources[k];
      const int64_t C = src.channels;
      for (int64_t c = 0; c < C; c += L) {
        V d[36], r[36];
        for (int i = 0; i < 6; ++i)
          for (int j = 0; j < 6; ++j) {
            const int64_t y = y0 + i, x = x0 + j;
            if (!inside && (y < 0 || x < 0 || y >= H || x >= W)) {
              d[i * 6 + j] = V{};
            } else if (src.depth_to_space) {
              const int64_t at = ((y >> 1) * (W >> 1) + (x >> 1)) * 4 * C + ((y & 1) * 2 + (x & 1)) * C + c;
              d[i * 6 + j] = load<V>(src.data + at);
            } else {
              d[i * 6 + j] = load<V>(src.data + (y * W + x) * C + c);
            }
          }
        for (int j = 0; j < 6; ++j) input_1d(d + j, 6, r + j, 6);  // columns
        for (int i = 0; i < 6; ++i) input_1d(r + i * 6, 1, d + i * 6, 1);  // rows
        float* out = v + t * Cin + channel_base + c;
        for (int p = 0; p < 36; ++p) store(out + p * T * Cin, d[p]);
      }
      channel_base += C;
    }
  }
}

// c[R][L NV] = a[R][K] · b[K][L NV] (row strides lda, ldb, ldc).
template <int L, int R, int NV>
LS_INLINE void gemm_kernel(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                           int64_t K) {
  typedef typename Vec<L>::vec V;
  V acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = V{};
  for (int64_t k = 0; k < K; ++k) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = load<V>(b + k * ldb + L * v);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const V av = splat<V>(a[r * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] += av * bv[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) store(c + r * ldc + L * v, acc[r][v]);
}

// Rows in blocks of `R` (then one block of the remaining rows), columns in blocks of L NV.
template <int L, int R, int NV>
LS_INLINE void gemm_rows_tail(int64_t rows, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                              int64_t ldc, int64_t K) {
  if constexpr (R > 1) {
    if (rows == R) return gemm_kernel<L, R, NV>(a, lda, b, ldb, c, ldc, K);
    return gemm_rows_tail<L, R - 1, NV>(rows, a, lda, b, ldb, c, ldc, K);
  } else {
    gemm_kernel<L, 1, NV>(a, lda, b, ldb, c, ldc, K);
  }
}
template <int L, int R, int NV>
LS_INLINE void gemm(int64_t rows, int64_t cols, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                    int64_t ldc, int64_t K) {
  for (int64_t j = 0; j < cols; j += L * NV) {
    int64_t i = 0;
    for (; i + R <= rows; i += R) gemm_kernel<L, R, NV>(a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc, K);
    if (i < rows) gemm_rows_tail<L, R - 1, NV>(rows - i, a + i * lda, lda, b + j, ldb, c + i * ldc + j, ldc, K);
  }
}

// dst pixels of the block's tiles from M[p][t][co].
template <int L>
LS_INLINE void transform_outputs(const Block& b, const float* m) {
  typedef typename Vec<L>::vec V;
  const WinogradShape& s = *b.shape;
  const int64_t H = s.height, W = s.width, Cout = s.out_channels, T = b.tile_block;
  const V lo = splat<V>(s.clip_min), hi = splat<V>(s.clip_max), zero = V{};
  for (int64_t t = 0; t < b.tiles; ++t) {
    const int64_t tile = b.first_tile + t;
    const int64_t y0 = (tile / b.tiles_across) * 4, x0 = (tile % b.tiles_across) * 4;
    for (int64_t c = 0; c < Cout; c += L) {
      V d[36], r[24], y[16];
      const float* in = m + t * Cout + c;
      for (int p = 0; p < 36; ++p) d[p] = load<V>(in + p * T * Cout);
      for (int j = 0; j < 6; ++j) output_1d(d + j, 6, r + j, 6);  // columns: r[4][6]
      for (int i = 0; i < 4; ++i) output_1d(r + i * 6, 1, y + i * 4, 1);  // rows: y[4][4]
      const V bias = b.bias ? load<V>(b.bias + c) : zero;
      for (int i = 0; i < 4 && y0 + i < H; ++i)
        for (int j = 0; j < 4 && x0 + j < W; ++j) {
          float* out = b.dst + ((y0 + i) * W + x0 + j) * Cout + c;
          V value = y[i * 4 + j] + bias;
          if (s.accumulate) value += load<V>(out);
          if (s.activation == WinogradActivation::Relu) value = value > zero ? value : zero;
          if (s.activation == WinogradActivation::Clip) {
            value = value < lo ? lo : value;
            value = value > hi ? hi : value;
          }
          store(out, value);
        }
    }
  }
}

// The workers, instantiated once per instruction set (see the top of the file).
// U[p][ci][co] for input channels [first, last) from weights [ci][3][3][co].
template <int L>
LS_INLINE void weights_for(const WinogradShape& s, const float* w, int64_t first, int64_t last, float* u) {
  typedef typename Vec<L>::vec V;
  const int64_t Cin = s.in_channels, Cout = s.out_channels;
  for (int64_t ci = first; ci < last; ++ci)
    for (int64_t c = 0; c < Cout; c += L) {
      V g[9], t[18], r[36];
      for (int k = 0; k < 9; ++k) g[k] = load<V>(w + (ci * 9 + k) * Cout + c);
      for (int j = 0; j < 3; ++j) weight_1d(g + j, 3, t + j, 3);  // columns: t[6][3]
      for (int i = 0; i < 6; ++i) weight_1d(t + i * 3, 1, r + i * 6, 1);  // rows: r[6][6]
      for (int p = 0; p < 36; ++p) store(u + (p * Cin + ci) * Cout + c, r[p]);
    }
}

// One block of tiles, start to finish, in one thread's scratch (V, then M after it).
template <int L>
LS_INLINE void block_for(const Block& b, float* scratch) {
  const WinogradShape& s = *b.shape;
  const int64_t Cin = s.in_channels, Cout = s.out_channels, T = b.tile_block;
  float* v = scratch;
  float* m = scratch + 36 * T * Cin;
  transform_inputs<L>(b, v);
  for (int p = 0; p < 36; ++p) {
    const float* a = v + p * T * Cin;
    const float* w = b.u + p * Cin * Cout;
    float* c = m + p * T * Cout;
    // Accumulators sized to the register file: 24 of AVX-512's 32 zmm; 12 of AVX2's (or SSE's)
    // 16 registers, with room for the row of b and the broadcast.
    if constexpr (L < 16) gemm<L, 6, 2>(b.tiles, Cout, a, Cin, w, Cout, c, Cout, Cin);
    else if (Cout % 64 == 0) gemm<L, 6, 4>(b.tiles, Cout, a, Cin, w, Cout, c, Cout, Cin);
    else if (Cout % 32 == 0) gemm<L, 12, 2>(b.tiles, Cout, a, Cin, w, Cout, c, Cout, Cin);
    else gemm<L, 12, 1>(b.tiles, Cout, a, Cin, w, Cout, c, Cout, Cin);
  }
  transform_outputs<L>(b, m);
}

#define LS_WORKERS(isa, L)                                                                                       \
  __attribute__((target(isa))) void weights_##L(const WinogradShape& s, const float* w, int64_t first, int64_t last, \
                                                float* u) {                                                       \
    weights_for<L>(s, w, first, last, u);                                                                         \
  }                                                                                                               \
  __attribute__((target(isa))) void block_##L(const Block& b, float* scratch) { block_for<L>(b, scratch); }
LS_WORKERS("avx512f", 16)
LS_WORKERS("avx2,fma", 8)
LS_WORKERS("sse2", 4)
#undef LS_WORKERS

struct Workers {
  void (*weights)(const WinogradShape&, const float*, int64_t, int64_t, float*);
  void (*block)(const Block&, float*);
};

const Workers& workers() {
  static const Workers w = __builtin_cpu_supports("avx512f")                                   ? Workers{weights_16, block_16}
                           : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? Workers{weights_8, block_8}
                                                                                              : Workers{weights_4, block_4};
  return w;
}

}  // namespace

// Measured faster than oneDNN's direct kernels with AVX-512 (Zen 4/5) and with AVX2 + FMA (M1 on a
// Zen 1: 100 against 136 ms); the baseline SSE build is not measured, so it stays opt-in there.
bool winograd_is_fast_on_this_cpu() {
  return __builtin_cpu_supports("avx512f") || (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
}

bool winograd_supports(int64_t in_channels, int64_t out_channels) {
  return in_channels > 0 && out_channels > 0 && in_channels % 16 == 0 && out_channels % 16 == 0;
}

int64_t winograd_tile_block(const WinogradShape& s) {
  // V and M take 36 x 4 bytes per tile and channel. Two one-off experiments (throwaway builds,
  // no command in the repository repeats them) chose the budget: 256 KB per thread measured
  // best of 128 KB to 3 MB on unet-32's shapes, and a sweep of 6 to 96 tiles per block
  // (interleaved in one process) found no block size faster than this choice by more than 5%
  // except 512 -> 256 channels on 32x32 (12 tiles: 15% faster; the engine runs that shape
  // direct): the block's V and M stay in L2, the transformed weights stream from L3.
  constexpr int64_t kBytesPerThread = 256 * 1024;
  const int64_t per_tile = 36 * 4 * (s.in_channels + s.out_channels);
  const int64_t tiles = ((s.height + 3) / 4) * ((s.width + 3) / 4);
  const int64_t by_cache = std::max<int64_t>(6, kBytesPerThread / per_tile / 6 * 6);
  // At least two blocks per thread when the map allows, so no thread idles at the end.
  const int64_t by_balance = std::max<int64_t>(6, (tiles / (2 * std::max(1, s.threads)) + 5) / 6 * 6);
  return std::min(by_cache, by_balance);
}

size_t winograd_scratch_bytes(const WinogradShape& s) {
  const size_t T = static_cast<size_t>(winograd_tile_block(s));
  const size_t u = 36 * static_cast<size_t>(s.in_channels * s.out_channels);
  const size_t per_thread = 36 * T * static_cast<size_t>(s.in_channels + s.out_channels);
  return (u + static_cast<size_t>(std::max(1, s.threads)) * per_thread) * sizeof(float);
}

std::vector<float> winograd_weight_layout(const float* onnx_weights, int64_t out_channels, int64_t in_channels) {
  std::vector<float> w(static_cast<size_t>(in_channels * 9 * out_channels));
  for (int64_t co = 0; co < out_channels; ++co)
    for (int64_t ci = 0; ci < in_channels; ++ci)
      for (int k = 0; k < 9; ++k) w[(ci * 9 + k) * out_channels + co] = onnx_weights[(co * in_channels + ci) * 9 + k];
  return w;
}

void winograd_conv3x3(const WinogradShape& s, const WinogradSource* sources, int source_count, const float* weights,
                      const float* bias, float* dst, float* scratch) {
  const int64_t tiles_across = (s.width + 3) / 4, tiles = ((s.height + 3) / 4) * tiles_across;
  const int64_t T = winograd_tile_block(s);
  const int64_t blocks = (tiles + T - 1) / T;
  const size_t per_thread = 36 * static_cast<size_t>(T) * static_cast<size_t>(s.in_channels + s.out_channels);
  float* u = scratch;
  float* blocks_scratch = scratch + 36 * s.in_channels * s.out_channels;
  constexpr int64_t kChannelsPerTask = 8;
  const int64_t weight_tasks = (s.in_channels + kChannelsPerTask - 1) / kChannelsPerTask;
  const Workers& isa = workers();
#pragma omp parallel num_threads(std::max(1, s.threads))
  {
#pragma omp for schedule(static)
    for (int64_t k = 0; k < weight_tasks; ++k)
      isa.weights(s, weights, k * kChannelsPerTask, std::min(s.in_channels, (k + 1) * kChannelsPerTask), u);
#pragma omp for schedule(dynamic, 1)
    for (int64_t k = 0; k < blocks; ++k) {
      const Block b{&s, sources, source_count, u, bias, dst, k * T, std::min(T, tiles - k * T), T, tiles_across};
      isa.block(b, blocks_scratch + per_thread * omp_get_thread_num());
    }
  }
}

}  // namespace leanseg::runtime
