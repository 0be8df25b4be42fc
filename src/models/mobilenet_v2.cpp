#include "mobilenet_v2.h"

#include "batch_norm.h"
#include "blocks.h"
#include "leanseg/error.h"
#include "leanseg/safetensors.h"
#include "leanseg/tensor_io.h"

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

torch::Tensor adapt_stem(const torch::Tensor& rgb, int64_t channels, StemInit init) {
  if (channels == 3) return rgb;
  auto base = init == StemInit::Mean ? rgb.mean(1, true) : rgb.sum(1, true) / static_cast<double>(channels);
  return base.repeat({1, channels, 1, 1}).contiguous();
}

}  // namespace

MobileNetV2FeaturesImpl::MobileNetV2FeaturesImpl(int64_t in_channels) {
  features = register_module("features", make_features(in_channels));
}

torch::Tensor MobileNetV2FeaturesImpl::forward_range(torch::Tensor x, size_t begin, size_t end) {
  auto it = features->begin();
  for (size_t i = begin; i < end; ++i) x = it[i].forward(x);
  return x;
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
  const SafeTensorsFile file = SafeTensorsFile::open(path);
  auto params = module.named_parameters(true);
  auto buffers = module.named_buffers(true);
  int64_t loaded = 0;
  for (const auto& t : file.tensors()) {
    const bool is_features = t.name.rfind("features.", 0) == 0;
    const bool is_classifier = t.name.rfind("classifier.", 0) == 0;
    if (!is_features && !is_classifier)
      throw Error("'" + path + "': unexpected tensor '" + t.name + "' (not a torchvision MobileNetV2 key)");
    const std::string name = prefix + t.name;
    torch::Tensor* dst = params.find(name);
    if (!dst) dst = buffers.find(name);
    if (!dst) {
      if (is_classifier) continue;  // encoder-only models have no classifier
      throw Error("'" + path + "': tensor '" + t.name + "' has no counterpart '" + name + "' in the model");
    }
    torch::Tensor src = tensor_from_safetensors(file, t);
    if (t.name == "features.0.0.weight") {
      require(src.dim() == 4 && src.size(1) == 3,
              "'" + path + "': stem 'features.0.0.weight' should be [32, 3, 3, 3], got " + shape_string(src));
      src = adapt_stem(src, dst->size(1), stem);
    }
    copy_checked(*dst, src, "'" + path + "': tensor '" + t.name + "'");
    ++loaded;
  }
  // Every encoder tensor of the model must have come from the file.
  for (const auto& group : {params, buffers})
    for (const auto& item : group) {
      const std::string& key = item.key();
      if (key.rfind(prefix + "features.", 0) == 0 || key.rfind(prefix + "classifier.", 0) == 0) {
        if (!file.find(key.substr(prefix.size())))
          throw Error("'" + path + "': is missing tensor '" + key.substr(prefix.size()) + "'");
      }
    }
  require(loaded > 0, "'" + path + "': no MobileNetV2 tensors found");
}

}  // namespace leanseg
