// M1 `mobilenet-aspp-se-unet` and M4 `-lite`, as resolved in SPEC.md:
//   enc0  = Conv3x3(C→32)+BN+ReLU at full resolution (trainable)
//   enc1..enc5 = MobileNetV2 features [0:2] [2:4] [4:7] [7:14] [14:19] (frozen by default)
//   bottleneck = ASPP (1280 → 512), dec5..dec1 = DecoderStage with SE skips, head 1×1 → 1.
#include "channel_groups.h"
#include "decoder_stage.h"
#include "export_graph.h"
#include "mobilenet_v2.h"
#include "zoo.h"

namespace leanseg {
namespace {

class MobileNetUNetImpl : public SegmentationModelImpl, public EncoderOwner {
 public:
  explicit MobileNetUNetImpl(const ModelConfig& c) : SegmentationModelImpl(c) {
    const bool separable = option<bool>(c, "separable");
    const auto dec = option<std::vector<int64_t>>(c, "decoder_channels");
    require(dec.size() == 5, c.arch + ": 'decoder_channels' needs 5 values (dec5..dec1)");
    const int64_t se_r = option<int64_t>(c, "se_reduction");
    enc0 = register_module("enc0", conv_bn_act(c.in_channels, 32, 3));
    backbone = register_module("encoder", MobileNetV2Features(c.in_channels));
    AsppOptions a;
    a.in = backbone->out_channels().back();
    a.branch = option<int64_t>(c, "aspp_branch_channels");
    a.out = option<int64_t>(c, "aspp_out_channels");
    a.rates = option<std::vector<int64_t>>(c, "aspp_rates");
    a.pool_groups = option<int64_t>(c, "aspp_pool_groups");
    a.dropout = option<double>(c, "dropout");
    a.separable = separable;
    aspp = register_module("aspp", Aspp(a));
    const auto widths = backbone->out_channels();  // enc1..enc5
    const int64_t skips[5] = {widths[3], widths[2], widths[1], widths[0], 32};  // enc4, enc3, enc2, enc1, enc0
    int64_t in = a.out;
    for (int i = 0; i < 5; ++i) {
      auto block = torch::nn::AnyModule(ResidualBlockSE(dec[i] + skips[i], dec[i], separable, se_r));
      decoder[i] = register_module("dec" + std::to_string(5 - i),
                                   DecoderStage(in, skips[i], dec[i], separable, true, std::move(block)));
      in = dec[i];
    }
    head = register_module("head", CountedConv2d(torch::nn::Conv2dOptions(in, c.output_channels(), 1)));
    freeze_encoder_as_configured(*this);
  }

  std::vector<StageDef> stages() const override {
    std::vector<StageDef> s = encoder_stage_defs(*backbone);
    s.insert(s.end(), {
            {"bottleneck", {"aspp."}},
            {"dec5", {"dec5."}},
            {"dec4", {"dec4."}},
            {"dec3", {"dec3."}},
            {"dec2", {"dec2."}},
            {"dec1", {"dec1."}},
            {"head", {"head."}}});
    return s;
  }

  EncoderImpl& encoder() override { return *backbone; }
  StemInit stem_init() const override { return stem_init_from_string(option<std::string>(config_, "stem_init")); }

  // ASPP branches and projection, every decoder stage (upsampled channels, the residual
  // block's inner and output channels, SE hidden units) and enc0, read through dec1's skip SE
  // after the upsampled channels of its concat. The MobileNetV2 encoder is not pruned.
  std::vector<ChannelGroup> channel_groups() const override {
    const bool sep = option<bool>(config_, "separable");
    ChannelGroupBuilder b(*this);
    auto dec = [](int i) { return "dec" + std::to_string(i); };
    aspp_groups(b, "aspp", upsample_reader(b, "dec5.up"));
    for (int i = 5; i >= 1; --i) {
      const std::string d = dec(i);
      b.begin(d + ".up");
      upsample_out(b, d + ".up");
      residual_block_se_reader(b, d + ".block", sep)(b, 0);
      b.end();
      squeeze_excite_groups(b, d + ".skip_se");
      residual_block_se_groups(b, d + ".block", sep);
      residual_block_se_out(b, d + ".block", sep,
                            i > 1 ? upsample_reader(b, dec(i - 1) + ".up")
                                  : [](ChannelGroupBuilder& b, int64_t offset) { b.conv_in("head", offset); });
    }
    const int64_t up = sep ? b.size("dec1.up.pointwise.weight", 0) : b.size("dec1.up.up.weight", 1);
    b.begin("enc0");
    conv_bn_out(b, "enc0");
    squeeze_excite_channels(b, "dec1.skip_se");
    residual_block_se_reader(b, "dec1.block", sep)(b, up);
    b.end();
    return b.take();
  }

 protected:
  torch::Tensor run(const torch::Tensor& x, std::vector<StageRecord>* r) override {
    auto e0 = stage(r, "enc0", [&] { return enc0->forward(x); });
    torch::Tensor e[5];
    static const char* enc_names[5] = {"enc1", "enc2", "enc3", "enc4", "enc5"};
    for (size_t i = 0; i < 5; ++i)
      e[i] = stage(r, enc_names[i], [&] { return backbone->forward_stage(i, i == 0 ? x : e[i - 1]); });
    auto y = stage(r, "bottleneck", [&] { return aspp(e[4]); });
    const torch::Tensor skips[5] = {e[3], e[2], e[1], e[0], e0};
    static const char* names[5] = {"dec5", "dec4", "dec3", "dec2", "dec1"};
    for (int i = 0; i < 5; ++i) y = stage(r, names[i], [&] { return decoder[i](y, skips[i]); });
    return stage(r, "head", [&] { return head(y); });
  }

 public:
  std::string emit_graph(GraphBuilder& g, const std::string& x) const override {
    const std::string e0 = emit_seq(g, *enc0, "enc0", x);
    std::string e[5];
    for (size_t i = 0; i < 5; ++i) e[i] = backbone->emit_stage(g, "encoder", i, i == 0 ? x : e[i - 1]);
    std::string y = emit_module(g, *aspp, "aspp", e[4]);
    const std::string skips[5] = {e[3], e[2], e[1], e[0], e0};
    for (int i = 0; i < 5; ++i) y = decoder[i]->emit_graph(g, "dec" + std::to_string(5 - i), y, skips[i]);
    return emit_module(g, *head, "head", y);
  }

 private:
  Seq enc0{nullptr};
  MobileNetV2Features backbone{nullptr};  // module "encoder"
  Aspp aspp{nullptr};
  DecoderStage decoder[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
  CountedConv2d head{nullptr};
};

}  // namespace

SegmentationModel make_mobilenet_aspp_se_unet(const ModelConfig& config) {
  std::shared_ptr<SegmentationModelImpl> impl = std::make_shared<MobileNetUNetImpl>(config);
  return SegmentationModel(impl);
}

}  // namespace leanseg
