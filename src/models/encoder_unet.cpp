// `unet-<encoder>` (smp's Unet over any registered encoder, encoder.h):
//   enc0 = Conv3x3(C→decoder_channels[4])+BN+ReLU at full resolution (the skip of dec1)
//   enc1..enc5 = the encoder's five stages (/2 .. /32)
//   dec5..dec1 = DecoderStage: 2× transposed-conv up, concat the skip, [Conv3x3+BN+ReLU]×2
//   head = 1×1 conv to the logits.
// Every width comes from the encoder (out_channels) and the options; nothing here knows which
// backbone it holds.
#include "channel_groups.h"
#include "decoder_stage.h"
#include "encoder.h"
#include "export_graph.h"
#include "mobilenet_v2.h"
#include "zoo.h"

namespace leanseg {
namespace {

class EncoderUNetImpl : public SegmentationModelImpl, public EncoderOwner {
 public:
  EncoderUNetImpl(const ModelConfig& c, const EncoderEntry& e) : SegmentationModelImpl(c) {
    const auto dec = option<std::vector<int64_t>>(c, "decoder_channels");
    encoder_ = register_module("encoder", e.make(c.in_channels));
    const auto widths = encoder_->out_channels();
    require(widths.size() == 5 && dec.size() == 5, c.arch + ": needs 5 encoder stages and 5 'decoder_channels'");
    enc0 = register_module("enc0", conv_bn_act(c.in_channels, dec[4], 3));
    int64_t in = widths[4];
    for (size_t i = 0; i < 5; ++i) {
      const int64_t skip = i < 4 ? widths[3 - i] : dec[4];
      auto block = torch::nn::AnyModule(Seq(conv_bn_act(dec[i] + skip, dec[i], 3), conv_bn_act(dec[i], dec[i], 3)));
      decoder[i] = register_module(dec_name(i), DecoderStage(in, skip, dec[i], false, false, std::move(block)));
      in = dec[i];
    }
    head = register_module("head", CountedConv2d(torch::nn::Conv2dOptions(in, c.output_channels(), 1)));
    freeze_encoder_as_configured(*this);
  }

  std::vector<StageDef> stages() const override {
    std::vector<StageDef> s = encoder_stage_defs(*encoder_);
    for (size_t i = 0; i < 5; ++i) s.push_back({dec_name(i), {dec_name(i) + "."}});
    s.push_back({"head", {"head."}});
    return s;
  }

  // The encoder's own groups (unless frozen), enc0 (read by dec1 after its upsampled
  // channels), and per decoder stage: the upsampled channels, the two convs' outputs.
  std::vector<ChannelGroup> channel_groups() const override {
    ChannelGroupBuilder b(*this);
    if (!option<bool>(config_, "encoder_frozen")) encoder_->channel_groups(b, "encoder");
    for (size_t i = 0; i < 5; ++i) {
      const std::string d = dec_name(i), block = d + ".block";
      b.begin(d + ".up");
      upsample_out(b, d + ".up");
      conv_bn_reader(block + ".0")(b, 0);
      b.end();
      conv_bn_group(b, block + ".mid", block + ".0", conv_bn_reader(block + ".1"));
      conv_bn_group(b, block + ".out", block + ".1",
                    i < 4 ? upsample_reader(b, dec_name(i + 1) + ".up")
                          : [](ChannelGroupBuilder& b, int64_t offset) { b.conv_in("head", offset); });
    }
    const int64_t up = b.size("dec1.up.up.weight", 1);
    conv_bn_group(b, "enc0", "enc0", [up](ChannelGroupBuilder& b, int64_t offset) { b.conv_in("dec1.block.0.0", up + offset); });
    return b.take();
  }

  EncoderImpl& encoder() override { return *encoder_; }
  StemInit stem_init() const override { return stem_init_from_string(option<std::string>(config_, "stem_init")); }

 protected:
  torch::Tensor run(const torch::Tensor& x, std::vector<StageRecord>* r) override {
    static const char* enc_names[6] = {"enc0", "enc1", "enc2", "enc3", "enc4", "enc5"};
    torch::Tensor e[6];
    e[0] = stage(r, enc_names[0], [&] { return enc0->forward(x); });
    for (size_t i = 0; i < 5; ++i)
      e[i + 1] = stage(r, enc_names[i + 1], [&] { return encoder_->forward_stage(i, i == 0 ? x : e[i]); });
    torch::Tensor y = e[5];
    for (size_t i = 0; i < 5; ++i) {
      const torch::Tensor& skip = i < 4 ? e[4 - i] : e[0];
      y = stage(r, dec_names()[i], [&] { return decoder[i](y, skip); });
    }
    return stage(r, "head", [&] { return head(y); });
  }

 public:
  std::string emit_graph(GraphBuilder& g, const std::string& x) const override {
    std::string e[6];
    e[0] = emit_seq(g, *enc0, "enc0", x);
    for (size_t i = 0; i < 5; ++i) e[i + 1] = encoder_->emit_stage(g, "encoder", i, i == 0 ? x : e[i]);
    std::string y = e[5];
    for (size_t i = 0; i < 5; ++i) y = decoder[i]->emit_graph(g, dec_name(i), y, i < 4 ? e[4 - i] : e[0]);
    return emit_module(g, *head, "head", y);
  }

 private:
  static const char* const* dec_names() {
    static const char* names[5] = {"dec5", "dec4", "dec3", "dec2", "dec1"};
    return names;
  }
  static std::string dec_name(size_t i) { return dec_names()[i]; }

  std::shared_ptr<EncoderImpl> encoder_;
  Seq enc0{nullptr};
  DecoderStage decoder[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
  CountedConv2d head{nullptr};
};

}  // namespace

SegmentationModel make_encoder_unet(const ModelConfig& config, const std::string& encoder) {
  std::shared_ptr<SegmentationModelImpl> impl = std::make_shared<EncoderUNetImpl>(config, find_encoder(encoder));
  return SegmentationModel(impl);
}

}  // namespace leanseg
