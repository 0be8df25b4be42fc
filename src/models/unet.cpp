// M2: the Ronneberger U-Net with "same" padding and BatchNorm: double 3×3 conv+BN+ReLU per
// level, 4 max-poolings, ConvTranspose2d(k2, s2) up, concat skip, double conv; 1×1 head.
// Width w gives levels w, 2w, 4w, 8w and a 16w bottleneck (w=64: ~31M params, w=32: ~7.8M).
#include "blocks.h"
#include "channel_groups.h"
#include "export_graph.h"
#include "zoo.h"

namespace leanseg {
namespace {

Seq double_conv(int64_t in, int64_t out) {
  return Seq(conv_bn_act(in, out, 3), conv_bn_act(out, out, 3));
}

class UNetImpl : public SegmentationModelImpl {
 public:
  explicit UNetImpl(const ModelConfig& c) : SegmentationModelImpl(c) {
    const int64_t w = option<int64_t>(c, "width");
    require(w >= 1, c.arch + ": width must be >= 1");
    int64_t in = c.in_channels;
    for (int i = 0; i < 4; ++i) {
      enc[i] = register_module("enc" + std::to_string(i + 1), double_conv(in, w << i));
      in = w << i;
    }
    bottom = register_module("bottleneck", double_conv(in, w << 4));
    for (int i = 3; i >= 0; --i) {
      const std::string name = "dec" + std::to_string(i + 1);
      up[i] = register_module(name + "_up", Upsample(w << (i + 1), w << i));
      dec[i] = register_module(name, double_conv(w << (i + 1), w << i));
    }
    head = register_module("head", CountedConv2d(torch::nn::Conv2dOptions(w, c.output_channels(), 1)));
  }

  std::vector<StageDef> stages() const override {
    return {{"enc1", {"enc1."}}, {"enc2", {"enc2."}}, {"enc3", {"enc3."}}, {"enc4", {"enc4."}},
            {"bottleneck", {"bottleneck."}}, {"dec4", {"dec4_up.", "dec4."}}, {"dec3", {"dec3_up.", "dec3."}},
            {"dec2", {"dec2_up.", "dec2."}}, {"dec1", {"dec1_up.", "dec1."}}, {"head", {"head."}}};
  }

  // Both convs of every double conv; encoder outputs are read by the next level and, after the
  // upsampled channels, by the decoder's concat; transposed-conv outputs by the decoder.
  std::vector<ChannelGroup> channel_groups() const override {
    ChannelGroupBuilder b(*this);
    auto double_conv = [&](const std::string& p, const ChannelReader& next) {
      conv_bn_group(b, p + ".mid", p + ".0", conv_bn_reader(p + ".1"));
      conv_bn_group(b, p + ".out", p + ".1", next);
    };
    auto dec = [](int i) { return "dec" + std::to_string(i); };
    for (int i = 1; i <= 4; ++i) {
      const ChannelReader deeper = conv_bn_reader(i < 4 ? "enc" + std::to_string(i + 1) + ".0" : "bottleneck.0");
      const int64_t up = b.size(dec(i) + "_up.up.weight", 1);  // the concat is {up(x), skip}
      double_conv("enc" + std::to_string(i), [=](ChannelGroupBuilder& b, int64_t offset) {
        deeper(b, offset);
        b.conv_in(dec(i) + ".0.0", up + offset);
      });
    }
    double_conv("bottleneck", upsample_reader(b, "dec4_up"));
    for (int i = 4; i >= 1; --i) {
      b.begin(dec(i) + "_up");
      upsample_out(b, dec(i) + "_up");
      conv_bn_reader(dec(i) + ".0")(b, 0);
      b.end();
      double_conv(dec(i), i > 1 ? upsample_reader(b, dec(i - 1) + "_up")
                                : [](ChannelGroupBuilder& b, int64_t offset) { b.conv_in("head", offset); });
    }
    return b.take();
  }

 protected:
  torch::Tensor run(const torch::Tensor& x, std::vector<StageRecord>* r) override {
    static const char* enc_names[4] = {"enc1", "enc2", "enc3", "enc4"};
    static const char* dec_names[4] = {"dec1", "dec2", "dec3", "dec4"};
    torch::Tensor skips[4];
    torch::Tensor y = x;
    for (int i = 0; i < 4; ++i) {
      y = stage(r, enc_names[i], [&] { return enc[i]->forward(i == 0 ? y : torch::max_pool2d(y, 2)); });
      skips[i] = y;
    }
    y = stage(r, "bottleneck", [&] { return bottom->forward(torch::max_pool2d(y, 2)); });
    for (int i = 3; i >= 0; --i)
      y = stage(r, dec_names[i], [&] { return dec[i]->forward(torch::cat({up[i](y), skips[i]}, 1)); });
    return stage(r, "head", [&] { return head(y); });
  }

 public:
  std::string emit_graph(GraphBuilder& g, const std::string& x) const override {
    std::string skips[4];
    std::string y = x;
    for (int i = 0; i < 4; ++i) {
      const std::string name = "enc" + std::to_string(i + 1);
      y = emit_seq(g, *enc[i], name, i == 0 ? y : emit_max_pool2(g, name + "/pool", y));
      skips[i] = y;
    }
    y = emit_seq(g, *bottom, "bottleneck", emit_max_pool2(g, "bottleneck/pool", y));
    for (int i = 3; i >= 0; --i) {
      const std::string name = "dec" + std::to_string(i + 1);
      const std::string up_out = emit_module(g, *up[i], name + "_up", y);
      y = emit_seq(g, *dec[i], name, emit_concat(g, name + "/concat", {up_out, skips[i]}));
    }
    return emit_module(g, *head, "head", y);
  }

 private:
  Seq enc[4] = {nullptr, nullptr, nullptr, nullptr};
  Seq bottom{nullptr};
  Upsample up[4] = {nullptr, nullptr, nullptr, nullptr};
  Seq dec[4] = {nullptr, nullptr, nullptr, nullptr};
  CountedConv2d head{nullptr};
};

}  // namespace

SegmentationModel make_unet(const ModelConfig& config) {
  std::shared_ptr<SegmentationModelImpl> impl = std::make_shared<UNetImpl>(config);
  return SegmentationModel(impl);
}

}  // namespace leanseg
