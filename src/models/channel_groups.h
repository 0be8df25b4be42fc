// Declaring the channel groups of structured pruning (ChannelGroup in model.h) block by block.
// A group is opened by the layers producing its channels and closed by the layers reading them;
// the helpers below know how each block of blocks.h produces and reads channels, so a model
// only says how its blocks are wired (which output feeds which input, at which concat offset).
#pragma once
#include <functional>

#include "leanseg/model.h"

namespace leanseg {

class ChannelGroupBuilder {
 public:
  explicit ChannelGroupBuilder(const torch::nn::Module& model);

  // Starts a group; its channel count is that of the first producer added.
  void begin(const std::string& name);
  // Producers: conv (+ bias) and the BatchNorm after it ("" = none); transposed conv (groups 1);
  // linear. `importance` = false for layers whose outputs join the group without ranking it.
  void conv_out(const std::string& conv, const std::string& bn = "", bool importance = true);
  void conv_transpose_out(const std::string& conv);
  void linear_out(const std::string& fc, bool importance = true);
  // Depthwise layers carry the channels through (their weight's axis 0, bias and BatchNorm).
  void depthwise(const std::string& conv, const std::string& bn, int64_t offset = 0);
  void depthwise_transpose(const std::string& conv, int64_t offset = 0);
  // Readers: the input axis of a conv (axis 1), a transposed conv (axis 0), a linear layer.
  void conv_in(const std::string& conv, int64_t offset = 0);
  void conv_transpose_in(const std::string& conv, int64_t offset = 0);
  void linear_in(const std::string& fc);
  // Ends the group and keeps it.
  void end();

  bool has(const std::string& tensor) const;
  int64_t size(const std::string& tensor, int axis) const;
  std::vector<ChannelGroup> take() { return std::move(groups_); }

 private:
  void slot(const std::string& tensor, int axis, int64_t offset, bool optional = false);
  void batch_norm(const std::string& bn, int64_t offset);
  std::map<std::string, std::vector<int64_t>> shapes_;
  std::vector<ChannelGroup> groups_;
  ChannelGroup current_;
  bool open_ = false;
};

// Where a block reads an input range [offset, offset + n): adds the reading slots.
using ChannelReader = std::function<void(ChannelGroupBuilder&, int64_t offset)>;

// conv_bn_act Seq at `seq` ("0" conv, "1" BatchNorm) as a producer / a reader.
void conv_bn_out(ChannelGroupBuilder& b, const std::string& seq);
ChannelReader conv_bn_reader(const std::string& seq);
// A whole group `name`: the outputs of conv_bn_act Seq `seq`, read by `reader` at offset 0.
void conv_bn_group(ChannelGroupBuilder& b, const std::string& name, const std::string& seq, const ChannelReader& reader);
// separable_conv_bn_act Seq at `seq`: depthwise "0", pointwise "1".
void separable_out(ChannelGroupBuilder& b, const std::string& seq);
ChannelReader separable_reader(const std::string& seq);
// Upsample at `path` as a reader of its input / a producer of its output.
ChannelReader upsample_reader(const ChannelGroupBuilder& b, const std::string& path);
void upsample_out(ChannelGroupBuilder& b, const std::string& path);
// SqueezeExcite at `path`: its hidden channels (one group), and the slots reading/scaling the
// channels it recalibrates (fc1 input, fc2 output).
void squeeze_excite_groups(ChannelGroupBuilder& b, const std::string& path);
void squeeze_excite_channels(ChannelGroupBuilder& b, const std::string& path);

// ResidualBlockSE at `path`: internal groups (between the two convs, SE hidden); its input
// reader (first conv and projection); its output group (second conv + projection + SE), read
// by `next`. The output group exists only with a projection (an identity residual ties the
// output to the input).
void residual_block_se_groups(ChannelGroupBuilder& b, const std::string& path, bool separable);
ChannelReader residual_block_se_reader(const ChannelGroupBuilder& b, const std::string& path, bool separable);
void residual_block_se_out(ChannelGroupBuilder& b, const std::string& path, bool separable, const ChannelReader& next);
// BottleneckBlock at `path`: the reduced channels (reduce → depthwise → pointwise) and the
// pointwise output read by expand. Its output is tied to its input by the identity residual.
void bottleneck_block_groups(ChannelGroupBuilder& b, const std::string& path);
// Aspp at `path`: each conv branch (read by the projection at its concat offset) and the
// projection output, read by `next`. The pooled branch (GroupNorm) is not pruned.
void aspp_groups(ChannelGroupBuilder& b, const std::string& path, const ChannelReader& next);

}  // namespace leanseg
