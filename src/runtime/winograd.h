// The engine's own Winograd F(4x4, 3x3) convolution for fp32 NHWC maps (batch 1, stride 1,
// padding 1, channel counts in whole 16-blocks). Unlike oneDNN's Winograd kernels it reads and
// writes the NHWC layout every other layer uses (no conversions to nChw16c), reads the inputs of
// a concatenation (and a not yet depth-to-space'd upsampled map) in place, and works through the
// image in small blocks of tiles, so its transformed tiles take a few hundred KB per thread
// instead of oneDNN's tens of MB (measured in docs/runtime.md).
//
// Per block of T tiles (4x4 output pixels each, read from 6x6 input pixels):
//   V[36][T][Cin]  = B^T d B   (input transform)
//   M[p]           = V[p] · U[p] for the 36 points p (a T x Cin by Cin x Cout product each)
//   y              = A^T m A   (output transform) + bias, [+ dst], activation
// with U[36][Cin][Cout] = G g G^T the transformed weights (Lavin & Gray 2016, points 0, ±1, ±2).
// U is 4x the weights' bytes, so it is not kept: each call transforms the weights into its scratch
// (a pass over the weights, ~1% of the multiply-adds), which the engine plans in its arena where
// dead activations leave room.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace leanseg::runtime {

// One input of a Winograd convolution: `channels` channels of an NHWC map of the output's size.
// With `depth_to_space`, the map is stored at half the height and width with 4 x `channels`
// channels and read through DepthToSpace(2, DCR): pixel (y, x, c) is stored at
// [y / 2, x / 2, ((y % 2) * 2 + x % 2) * channels + c].
struct WinogradSource {
  const float* data = nullptr;
  int64_t channels = 0;
  bool depth_to_space = false;
};

enum class WinogradActivation { None, Relu, Clip };

struct WinogradShape {
  int64_t height = 0, width = 0;             // of the input and the output
  int64_t in_channels = 0, out_channels = 0;  // in_channels: all sources together
  int threads = 1;
  WinogradActivation activation = WinogradActivation::None;
  float clip_min = 0, clip_max = 0;  // WinogradActivation::Clip
  bool accumulate = false;           // dst += conv(x) (a residual add) instead of dst = conv(x)
};

// True when the kernel takes this shape (channel counts multiples of 16).
bool winograd_supports(int64_t in_channels, int64_t out_channels);

// Tiles per thread block: chosen so a thread's V and M stay in its share of the L2 cache.
int64_t winograd_tile_block(const WinogradShape& s);

// Bytes of scratch one call needs: U, and every thread's V and M blocks.
size_t winograd_scratch_bytes(const WinogradShape& s);

// The layout winograd_conv3x3 takes its weights in: [in_channels][3][3][out_channels] (output
// channels innermost, so the per-call transform runs along them), from ONNX's [out][in][3][3].
std::vector<float> winograd_weight_layout(const float* onnx_weights, int64_t out_channels, int64_t in_channels);

// dst[H][W][Cout] (NHWC) = activation(conv3x3(concat(sources)) + bias [+ dst]). `weights` in
// winograd_weight_layout over all input channels, `bias` may be null, `scratch` holds
// winograd_scratch_bytes(s) bytes, 64-byte aligned.
void winograd_conv3x3(const WinogradShape& s, const WinogradSource* sources, int source_count, const float* weights,
                      const float* bias, float* dst, float* scratch);

}  // namespace leanseg::runtime
