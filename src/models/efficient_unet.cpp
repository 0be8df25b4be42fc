// M3 `efficient-unet` (framework seed §1.1): every 3×3 conv is depthwise separable, each level
// refines with a bottleneck block (1×1 reduce by r, 3×3, 1×1 expand, + identity), the H/32
// bottleneck adds linear attention softmax(Q)(softmax(K)^T V), and skips are concatenated.
#include "channel_groups.h"
#include "decoder_stage.h"
#include "export_graph.h"
#include "zoo.h"

namespace leanseg {
namespace {

// separable conv (in→out) followed by a bottleneck block on `out` channels.
Seq level(int64_t in, int64_t out, int64_t r) {
  return Seq(separable_conv_bn_act(in, out), BottleneckBlock(out, r));
}

class EfficientUNetImpl : public SegmentationModelImpl {
 public:
  explicit EfficientUNetImpl(const ModelConfig& c) : SegmentationModelImpl(c) {
    const auto ch = option<std::vector<int64_t>>(c, "channels");
    require(ch.size() == 6, c.arch + ": 'channels' needs 6 values (enc0..enc4, bottleneck)");
    const int64_t r = option<int64_t>(c, "reduction");
    // A depthwise conv on 1–3 input channels is pointless: the stem is a plain 3×3 conv.
    enc[0] = register_module("enc0", Seq(conv_bn_act(c.in_channels, ch[0], 3), BottleneckBlock(ch[0], r)));
    for (int i = 1; i < 5; ++i) enc[i] = register_module("enc" + std::to_string(i), level(ch[i - 1], ch[i], r));
    bottom = register_module("bottleneck", level(ch[4], ch[5], r));
    attention = register_module("attention", LinearAttention(ch[5], option<int64_t>(c, "attention_heads")));
    int64_t in = ch[5];
    for (int i = 4; i >= 0; --i) {
      auto block = torch::nn::AnyModule(level(ch[i] * 2, ch[i], r));
      dec[i] = register_module("dec" + std::to_string(i + 1), DecoderStage(in, ch[i], ch[i], true, false, std::move(block)));
      in = ch[i];
    }
    head = register_module("head", CountedConv2d(torch::nn::Conv2dOptions(in, c.output_channels(), 1)));
  }

  std::vector<StageDef> stages() const override {
    return {{"enc0", {"enc0."}}, {"enc1", {"enc1."}}, {"enc2", {"enc2."}}, {"enc3", {"enc3."}},
            {"enc4", {"enc4."}}, {"bottleneck", {"bottleneck.", "attention."}}, {"dec5", {"dec5."}},
            {"dec4", {"dec4."}}, {"dec3", {"dec3."}}, {"dec2", {"dec2."}}, {"dec1", {"dec1."}},
            {"head", {"head."}}};
  }

  // Inside every bottleneck block, and each decoder's upsampled channels (read by the first
  // separable conv of its level). Level outputs are tied to their inputs by the identity
  // residuals of the bottleneck blocks, and the attention heads keep their size.
  std::vector<ChannelGroup> channel_groups() const override {
    ChannelGroupBuilder b(*this);
    for (int i = 0; i < 5; ++i) bottleneck_block_groups(b, "enc" + std::to_string(i) + ".1");
    bottleneck_block_groups(b, "bottleneck.1");
    for (int i = 5; i >= 1; --i) {
      const std::string d = "dec" + std::to_string(i);
      b.begin(d + ".up");
      upsample_out(b, d + ".up");
      separable_reader(d + ".block.0")(b, 0);
      b.end();
      bottleneck_block_groups(b, d + ".block.1");
    }
    return b.take();
  }

 protected:
  torch::Tensor run(const torch::Tensor& x, std::vector<StageRecord>* r) override {
    static const char* enc_names[5] = {"enc0", "enc1", "enc2", "enc3", "enc4"};
    static const char* dec_names[5] = {"dec1", "dec2", "dec3", "dec4", "dec5"};
    torch::Tensor skips[5];
    torch::Tensor y = x;
    for (int i = 0; i < 5; ++i) {
      y = stage(r, enc_names[i], [&] { return enc[i]->forward(i == 0 ? y : torch::max_pool2d(y, 2)); });
      skips[i] = y;
    }
    y = stage(r, "bottleneck", [&] { return attention(bottom->forward(torch::max_pool2d(y, 2))); });
    for (int i = 4; i >= 0; --i) y = stage(r, dec_names[i], [&] { return dec[i](y, skips[i]); });
    return stage(r, "head", [&] { return head(y); });
  }

 public:
  std::string emit_graph(GraphBuilder& g, const std::string& x) const override {
    std::string skips[5];
    std::string y = x;
    for (int i = 0; i < 5; ++i) {
      const std::string name = "enc" + std::to_string(i);
      y = emit_seq(g, *enc[i], name, i == 0 ? y : emit_max_pool2(g, name + "/pool", y));
      skips[i] = y;
    }
    y = emit_seq(g, *bottom, "bottleneck", emit_max_pool2(g, "bottleneck/pool", y));
    y = emit_module(g, *attention, "attention", y);
    for (int i = 4; i >= 0; --i) y = dec[i]->emit_graph(g, "dec" + std::to_string(i + 1), y, skips[i]);
    return emit_module(g, *head, "head", y);
  }

 private:
  Seq enc[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
  Seq bottom{nullptr};
  LinearAttention attention{nullptr};
  DecoderStage dec[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
  CountedConv2d head{nullptr};
};

}  // namespace

SegmentationModel make_efficient_unet(const ModelConfig& config) {
  std::shared_ptr<SegmentationModelImpl> impl = std::make_shared<EfficientUNetImpl>(config);
  return SegmentationModel(impl);
}

}  // namespace leanseg
