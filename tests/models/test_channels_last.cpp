// Channels-last training: a network kept in one memory format end to end. Layout copies
// (aten::contiguous that copies) are what a mixed network pays: each reads and writes a whole
// activation or gradient, and in M1 at 256² they were 1.35 GB per step before these paths.
#include <gtest/gtest.h>

#include <ATen/record_function.h>

#include "leanseg/model.h"
#include "leanseg/ops.h"
#include "leanseg/train.h"

namespace leanseg {
namespace {

bool is_channels_last(const torch::Tensor& t) { return t.suggest_memory_format() == torch::MemoryFormat::ChannelsLast; }

// Forward (a training-mode forward and its loss) and backward of `model` on x, counting the
// layout copies of tensors whose first dimension is the batch (activations and their gradients,
// not weights).
struct LayoutCopyCount { int forward = 0, backward = 0; };
thread_local bool t_in_backward = false;
thread_local int64_t t_batch = 0;
thread_local LayoutCopyCount* t_count = nullptr;

std::unique_ptr<at::ObserverContext> count_layout_copy(const at::RecordFunction& fn) {
  if (t_count && std::string(fn.name()) == "aten::contiguous" && fn.num_inputs() > 0 && fn.inputs()[0].isTensor()) {
    const at::Tensor t = fn.inputs()[0].toTensor();
    if (t.dim() == 4 && t.size(0) == t_batch) ++(t_in_backward ? t_count->backward : t_count->forward);
  }
  return nullptr;
}

LayoutCopyCount layout_copies_of_a_step(SegmentationModel& model, const torch::Tensor& x, const torch::Tensor& y) {
  LayoutCopyCount count;
  t_count = &count;
  t_batch = x.size(0);
  auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(count_layout_copy).needsInputs(true));
  const torch::Tensor loss = segmentation_loss(model->forward(x), y, LossOptions());
  t_in_backward = true;
  loss.backward();  // CPU backward runs on this thread
  t_in_backward = false;
  at::removeCallback(handle);
  t_count = nullptr;
  return count;
}

TEST(ChannelsLast, AmbiguousTensorsGetChannelsLastStrides) {
  // One channel (a grey image, a depthwise weight) or a 1×1 kernel: contiguous(ChannelsLast)
  // leaves NCHW strides and LibTorch suggests NCHW; to_channels_last does not.
  for (const auto& sizes : {std::vector<int64_t>{3, 1, 8, 8}, std::vector<int64_t>{16, 1, 3, 3}, std::vector<int64_t>{16, 32, 1, 1}}) {
    const torch::Tensor t = torch::randn(sizes);
    EXPECT_FALSE(is_channels_last(t.contiguous(torch::MemoryFormat::ChannelsLast))) << t.sizes();
    const torch::Tensor c = to_channels_last(t);
    EXPECT_TRUE(is_channels_last(c)) << t.sizes();
    EXPECT_TRUE(torch::equal(c, t)) << t.sizes();
  }
  const torch::Tensor already = torch::randn({2, 8, 4, 4}).contiguous(torch::MemoryFormat::ChannelsLast);
  EXPECT_EQ(to_channels_last(already).data_ptr(), already.data_ptr());  // no copy when already so
}

TEST(ChannelsLast, StrideSizedTransposedConvMatchesLibTorchsInBothLayouts) {
  // k = s = 2 runs as 1×1 conv + pixel_shuffle on channels-last input; NCHW input takes
  // LibTorch's own path. Same values, same gradients; the output keeps the input's layout.
  for (const int64_t groups : {1, 8}) {
    torch::manual_seed(3);
    CountedConvTranspose2d up(torch::nn::ConvTranspose2dOptions(8, 16, 2).stride(2).groups(groups));
    const torch::Tensor x0 = torch::randn({2, 8, 5, 7});
    auto run = [&](const torch::Tensor& x_in) {
      up->zero_grad();
      const torch::Tensor x = x_in.clone().requires_grad_(true);
      const torch::Tensor y = up(x);
      (y * torch::arange(y.numel(), torch::kFloat32).view(y.sizes()).remainder(7)).sum().backward();
      return std::vector<torch::Tensor>{y.detach(), x.grad(), up->weight.grad().clone(), up->bias.grad().clone()};
    };
    const auto nchw = run(x0), nhwc = run(to_channels_last(x0));
    EXPECT_EQ(nhwc[0].sizes(), (std::vector<int64_t>{2, 16, 10, 14}));
    EXPECT_TRUE(is_channels_last(nhwc[0])) << groups;
    EXPECT_FALSE(is_channels_last(nchw[0])) << groups;
    for (size_t i = 0; i < nchw.size(); ++i) EXPECT_TRUE(torch::allclose(nhwc[i], nchw[i], 1e-5, 1e-5)) << groups << " " << i;
  }
  // An overlapping transposed conv (k 3, s 2) is LibTorch's on both layouts.
  CountedConvTranspose2d overlapping(torch::nn::ConvTranspose2dOptions(4, 4, 3).stride(2));
  const torch::Tensor x = torch::randn({1, 4, 5, 5});
  EXPECT_TRUE(torch::allclose(overlapping(to_channels_last(x)), overlapping(x), 1e-5, 1e-5));
}

TEST(ChannelsLast, M1StepKeepsActivationsInOneLayout) {
  // M1 on a one-channel image: its stem, depthwise and 1×1 weights are all ambiguous, and its
  // decoder upsamples with k2 s2 transposed convs. Converted as `leanseg train` converts it,
  // the forward makes no layout copy of an activation; backward makes at most one per decoder
  // stage (the concat's gradient slice that the upsampling reads).
  torch::manual_seed(0);
  auto model = create_model("mobilenet-aspp-se-unet");
  model->train();
  convert_to_channels_last(*model);
  const torch::Tensor x = to_channels_last(torch::randn({3, 1, 64, 64}));
  const torch::Tensor y = (torch::rand({3, 1, 64, 64}) > 0.5).to(torch::kFloat32);
  const LayoutCopyCount copies = layout_copies_of_a_step(model, x, y);
  EXPECT_EQ(copies.forward, 0);
  EXPECT_LE(copies.backward, 5);
  // Converted with Tensor::contiguous(ChannelsLast) instead, the ambiguous weights and image
  // keep NCHW strides: the encoder runs NCHW, the decoder's 3×3 convs channels-last, and every
  // concat mixes the two.
  auto mixed = create_model("mobilenet-aspp-se-unet");
  mixed->train();
  {
    torch::NoGradGuard no_grad;
    for (auto& p : mixed->parameters())
      if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
  }
  const torch::Tensor x_nchw_strides = x.clone(torch::MemoryFormat::Contiguous);  // x.contiguous() keeps x's strides
  const LayoutCopyCount mixed_copies = layout_copies_of_a_step(mixed, x_nchw_strides, y);
  EXPECT_GT(mixed_copies.forward, 5);
}

}  // namespace
}  // namespace leanseg
