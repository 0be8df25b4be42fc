#include "mobilenet_v2.h"

#include "batch_norm.h"
#include "blocks.h"
#include "export_graph.h"
#include "leanseg/error.h"

namespace leanseg {

InvertedResidualImpl::InvertedResidualImpl(int64_t in, int64_t out, int64_t stride, int64_t expand_ratio)
    : use_residual_(stride == 1 && in == out) {
  const int64_t hidden = in * expand_ratio;
  Seq seq;
  if (expand_ratio != 1) seq->push_back(conv_bn_act(in, hidden, 1, 1, 1, 1, Act::ReLU6));
  seq->push_back(conv_bn_act(hidden, hidden, 3, stride, hidden, 1, Act::ReLU6));
  seq->push_back(CountedConv2d(torch::nn::Conv2dOptions(hidden, out, 1).bias(false)));
  seq->push_back(SyncableBatchNorm2d(out));
  conv = register_module("conv", seq);
}

torch::Tensor InvertedResidualImpl::forward(const torch::Tensor& x) {
  auto y = conv->forward(x);
  return use_residual_ ? x + y : y;
}

std::string InvertedResidualImpl::emit_graph(GraphBuilder& g, const std::string& path, const std::string& x) const {
  const auto y = emit_seq(g, *conv, path + ".conv", x);
  return use_residual_ ? emit_add(g, path, x, y) : y;
}

namespace {

Seq make_features(int64_t in_channels) {
  struct Setting { int64_t t, c, n, s; };
  const Setting settings[] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                              {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  Seq f;
  f->push_back(conv_bn_act(in_channels, 32, 3, 2, 1, 1, Act::ReLU6));
  int64_t c_in = 32;
  for (const auto& s : settings)
    for (int64_t i = 0; i < s.n; ++i) {
      f->push_back(InvertedResidual(c_in, s.c, i == 0 ? s.s : 1, s.t));
      c_in = s.c;
    }
  f->push_back(conv_bn_act(c_in, 1280, 1, 1, 1, 1, Act::ReLU6));
  return f;
}

const TorchvisionLayout& mobilenet_v2_layout() {
  static const TorchvisionLayout layout{"MobileNetV2", {"features."}, {"classifier."}, "features.0.0.weight"};
  return layout;
}

// Children of `features` forming encoder stage i.
constexpr size_t kStageBounds[6] = {0, 2, 4, 7, 14, 19};

}  // namespace

MobileNetV2FeaturesImpl::MobileNetV2FeaturesImpl(int64_t in_channels) {
  features = register_module("features", make_features(in_channels));
}

torch::Tensor MobileNetV2FeaturesImpl::forward_range(torch::Tensor x, size_t begin, size_t end) {
  auto it = features->begin();
  for (size_t i = begin; i < end; ++i) x = it[i].forward(x);
  return x;
}

torch::Tensor MobileNetV2FeaturesImpl::forward_stage(size_t i, const torch::Tensor& x) {
  require(i < 5, "MobileNetV2 encoder: no stage " + std::to_string(i));
  return forward_range(x, kStageBounds[i], kStageBounds[i + 1]);
}

std::string MobileNetV2FeaturesImpl::emit_stage(GraphBuilder& g, const std::string& path, size_t i,
                                                const std::string& x) const {
  require(i < 5, "MobileNetV2 encoder: no stage " + std::to_string(i));
  return emit_seq(g, *features, path.empty() ? "features" : path + ".features", x, kStageBounds[i], kStageBounds[i + 1]);
}

std::vector<std::string> MobileNetV2FeaturesImpl::stage_prefixes(size_t i) const {
  std::vector<std::string> prefixes;
  for (size_t k = kStageBounds[i]; k < kStageBounds[i + 1]; ++k) prefixes.push_back("features." + std::to_string(k) + ".");
  return prefixes;
}

void MobileNetV2FeaturesImpl::load_pretrained(const std::string& path, StemInit stem) {
  load_torchvision_weights(*this, path, mobilenet_v2_layout(), "", stem);
}

MobileNetV2ClassifierImpl::MobileNetV2ClassifierImpl(int64_t num_classes) {
  features = register_module("features", make_features(3));
  classifier = register_module(
      "classifier", Seq(torch::nn::Dropout(0.2), CountedLinear(1280, num_classes)));
}

torch::Tensor MobileNetV2ClassifierImpl::forward(const torch::Tensor& x) {
  auto f = features->forward(x);
  return classifier->forward(f.mean({2, 3}));
}

StemInit stem_init_from_string(const std::string& s) {
  if (s == "mean") return StemInit::Mean;
  if (s == "sum") return StemInit::Sum;
  throw Error("unknown stem init '" + s + "' (expected 'mean' or 'sum')");
}

void load_mobilenet_v2_weights(torch::nn::Module& module, const std::string& path,
                               const std::string& prefix, StemInit stem) {
  load_torchvision_weights(module, path, mobilenet_v2_layout(), prefix, stem);
}

}  // namespace leanseg
