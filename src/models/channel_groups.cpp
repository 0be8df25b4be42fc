#include "channel_groups.h"

#include "leanseg/error.h"

namespace leanseg {

ChannelGroupBuilder::ChannelGroupBuilder(const torch::nn::Module& model) {
  for (const auto& p : model.named_parameters(true)) shapes_[p.key()] = p.value().sizes().vec();
  for (const auto& p : model.named_buffers(true)) shapes_[p.key()] = p.value().sizes().vec();
}

bool ChannelGroupBuilder::has(const std::string& tensor) const { return shapes_.count(tensor) > 0; }

int64_t ChannelGroupBuilder::size(const std::string& tensor, int axis) const {
  auto it = shapes_.find(tensor);
  require(it != shapes_.end(), "channel groups: the model has no tensor '" + tensor + "'");
  require(axis < static_cast<int>(it->second.size()), "channel groups: tensor '" + tensor + "' has no axis " + std::to_string(axis));
  return it->second[static_cast<size_t>(axis)];
}

void ChannelGroupBuilder::begin(const std::string& name) {
  require(!open_, "channel groups: group '" + current_.name + "' was not ended before '" + name + "'");
  current_ = ChannelGroup{};
  current_.name = name;
  open_ = true;
}

void ChannelGroupBuilder::slot(const std::string& tensor, int axis, int64_t offset, bool optional) {
  require(open_, "channel groups: slot '" + tensor + "' outside a group");
  if (optional && !has(tensor)) return;
  const int64_t n = size(tensor, axis);
  if (current_.channels == 0) current_.channels = n - offset;
  require(offset + current_.channels <= n, "channel groups: '" + current_.name + "' needs " +
                                               std::to_string(offset + current_.channels) + " channels on axis " +
                                               std::to_string(axis) + " of '" + tensor + "', which has " + std::to_string(n));
  current_.slots.push_back({tensor, axis, offset});
}

void ChannelGroupBuilder::batch_norm(const std::string& bn, int64_t offset) {
  for (const char* t : {".weight", ".bias", ".running_mean", ".running_var"}) slot(bn + t, 0, offset);
}

void ChannelGroupBuilder::conv_out(const std::string& conv, const std::string& bn, bool importance) {
  slot(conv + ".weight", 0, 0);
  slot(conv + ".bias", 0, 0, /*optional=*/true);
  if (!bn.empty()) batch_norm(bn, 0);
  if (importance) current_.producers.push_back({conv + ".weight", 0, bn});
}

void ChannelGroupBuilder::conv_transpose_out(const std::string& conv) {
  slot(conv + ".weight", 1, 0);
  slot(conv + ".bias", 0, 0, true);
  current_.producers.push_back({conv + ".weight", 1, ""});
}

void ChannelGroupBuilder::linear_out(const std::string& fc, bool importance) {
  slot(fc + ".weight", 0, 0);
  slot(fc + ".bias", 0, 0, true);
  if (importance) current_.producers.push_back({fc + ".weight", 0, ""});
}

void ChannelGroupBuilder::depthwise(const std::string& conv, const std::string& bn, int64_t offset) {
  slot(conv + ".weight", 0, offset);
  slot(conv + ".bias", 0, offset, true);
  if (!bn.empty()) batch_norm(bn, offset);
}

void ChannelGroupBuilder::depthwise_transpose(const std::string& conv, int64_t offset) {
  slot(conv + ".weight", 0, offset);
  slot(conv + ".bias", 0, offset, true);
}

void ChannelGroupBuilder::conv_in(const std::string& conv, int64_t offset) { slot(conv + ".weight", 1, offset); }
void ChannelGroupBuilder::conv_transpose_in(const std::string& conv, int64_t offset) { slot(conv + ".weight", 0, offset); }
void ChannelGroupBuilder::linear_in(const std::string& fc) { slot(fc + ".weight", 1, 0); }

void ChannelGroupBuilder::end() {
  require(open_ && !current_.producers.empty(), "channel groups: '" + current_.name + "' has no producer");
  groups_.push_back(std::move(current_));
  open_ = false;
}

// --- blocks ---------------------------------------------------------------------------------

void conv_bn_out(ChannelGroupBuilder& b, const std::string& seq) { b.conv_out(seq + ".0", seq + ".1"); }

ChannelReader conv_bn_reader(const std::string& seq) {
  return [seq](ChannelGroupBuilder& b, int64_t offset) { b.conv_in(seq + ".0", offset); };
}

void conv_bn_group(ChannelGroupBuilder& b, const std::string& name, const std::string& seq, const ChannelReader& reader) {
  b.begin(name);
  conv_bn_out(b, seq);
  reader(b, 0);
  b.end();
}

void separable_out(ChannelGroupBuilder& b, const std::string& seq) { conv_bn_out(b, seq + ".1"); }

ChannelReader separable_reader(const std::string& seq) {
  return [seq](ChannelGroupBuilder& b, int64_t offset) {
    b.depthwise(seq + ".0.0", seq + ".0.1", offset);
    b.conv_in(seq + ".1.0", offset);
  };
}

ChannelReader upsample_reader(const ChannelGroupBuilder& b, const std::string& path) {
  if (b.has(path + ".pointwise.weight"))
    return [path](ChannelGroupBuilder& b, int64_t offset) {
      b.depthwise_transpose(path + ".up", offset);
      b.conv_in(path + ".pointwise", offset);
    };
  return [path](ChannelGroupBuilder& b, int64_t offset) { b.conv_transpose_in(path + ".up", offset); };
}

void upsample_out(ChannelGroupBuilder& b, const std::string& path) {
  if (b.has(path + ".pointwise.weight"))
    b.conv_out(path + ".pointwise");
  else
    b.conv_transpose_out(path + ".up");
}

void squeeze_excite_groups(ChannelGroupBuilder& b, const std::string& path) {
  b.begin(path + ".hidden");
  b.linear_out(path + ".fc1");
  b.linear_in(path + ".fc2");
  b.end();
}

void squeeze_excite_channels(ChannelGroupBuilder& b, const std::string& path) {
  b.linear_in(path + ".fc1");
  b.linear_out(path + ".fc2", /*importance=*/false);
}

namespace {
std::string body(const std::string& path, int i) { return path + ".body." + std::to_string(i); }
}  // namespace

void residual_block_se_groups(ChannelGroupBuilder& b, const std::string& path, bool separable) {
  if (separable) {
    b.begin(path + ".mid");
    separable_out(b, body(path, 0));
    separable_reader(body(path, 1))(b, 0);
    b.end();
  } else {
    conv_bn_group(b, path + ".mid", body(path, 0), conv_bn_reader(body(path, 1)));
  }
  squeeze_excite_groups(b, path + ".se");
}

ChannelReader residual_block_se_reader(const ChannelGroupBuilder& b, const std::string& path, bool separable) {
  const bool proj = b.has(path + ".proj.weight");
  const ChannelReader first = separable ? separable_reader(body(path, 0)) : conv_bn_reader(body(path, 0));
  return [=](ChannelGroupBuilder& b, int64_t offset) {
    first(b, offset);
    if (proj) b.conv_in(path + ".proj", offset);
  };
}

void residual_block_se_out(ChannelGroupBuilder& b, const std::string& path, bool separable, const ChannelReader& next) {
  if (!b.has(path + ".proj.weight")) return;
  b.begin(path + ".out");
  if (separable)
    separable_out(b, body(path, 1));
  else
    conv_bn_out(b, body(path, 1));
  b.conv_out(path + ".proj");  // the other operand of the residual add
  squeeze_excite_channels(b, path + ".se");
  next(b, 0);
  b.end();
}

void bottleneck_block_groups(ChannelGroupBuilder& b, const std::string& path) {
  conv_bn_group(b, path + ".reduced", path + ".reduce", separable_reader(path + ".spatial"));
  b.begin(path + ".spatial");
  separable_out(b, path + ".spatial");
  conv_bn_reader(path + ".expand")(b, 0);
  b.end();
}

void aspp_groups(ChannelGroupBuilder& b, const std::string& path, const ChannelReader& next) {
  int64_t offset = 0;
  for (int i = 0;; ++i) {
    const std::string branch = path + ".branches." + std::to_string(i);
    const bool plain = b.has(branch + ".0.weight");
    if (!plain && !b.has(branch + ".1.0.weight")) break;
    b.begin(branch);
    if (plain)
      conv_bn_out(b, branch);
    else
      separable_out(b, branch);
    const int64_t n = b.size(plain ? branch + ".0.weight" : branch + ".1.0.weight", 0);
    b.conv_in(path + ".project.0", offset);
    b.end();
    offset += n;
  }
  b.begin(path + ".out");
  conv_bn_out(b, path + ".project");
  next(b, 0);
  b.end();
}

}  // namespace leanseg
