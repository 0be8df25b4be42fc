// Changing the channel counts of a built model in place (structured pruning, and loading a
// structurally pruned model file): tensors get their new shapes, then every conv, transposed
// conv, linear and BatchNorm layer takes its channel options from its weights so that forward,
// FLOP counting and graph export all see the smaller model.
#include "leanseg/error.h"
#include "leanseg/model.h"

namespace leanseg {
namespace {

std::string shape_text(at::IntArrayRef s) { return nlohmann::json(s.vec()).dump(); }

// Depthwise layers (groups == in_channels > 1) stay depthwise when their channels shrink.
void fit_conv(torch::nn::Conv2dImpl& c) {
  auto& o = c.options;
  const int64_t out = c.weight.size(0);
  if (o.groups() > 1 && o.groups() == o.in_channels()) {
    const int64_t per_group = o.out_channels() / o.groups();
    o.groups(out / per_group).in_channels(out / per_group).out_channels(out);
  } else {
    o.out_channels(out).in_channels(c.weight.size(1) * o.groups());
  }
}

void fit_conv_transpose(torch::nn::ConvTranspose2dImpl& c) {
  auto& o = c.options;  // weight [in, out / groups, kh, kw]
  const int64_t in = c.weight.size(0);
  if (o.groups() > 1 && o.groups() == o.in_channels()) o.groups(in);
  o.in_channels(in).out_channels(c.weight.size(1) * o.groups());
}

void fit_module_options(torch::nn::Module& root) {
  for (const auto& item : root.named_modules("", /*include_self=*/true)) {
    auto& m = *item.value();
    if (auto* c = m.as<torch::nn::Conv2dImpl>()) {
      fit_conv(*c);
    } else if (auto* t = m.as<torch::nn::ConvTranspose2dImpl>()) {
      fit_conv_transpose(*t);
    } else if (auto* l = m.as<torch::nn::LinearImpl>()) {
      l->options.in_features(l->weight.size(1)).out_features(l->weight.size(0));
    } else if (auto* bn = m.as<torch::nn::BatchNorm2dImpl>()) {
      bn->options.num_features(bn->running_mean.defined() ? bn->running_mean.size(0) : bn->weight.size(0));
    }
  }
}

torch::Tensor* find_tensor(torch::OrderedDict<std::string, torch::Tensor>& params,
                           torch::OrderedDict<std::string, torch::Tensor>& buffers, const std::string& name) {
  if (auto* p = params.find(name)) return p;
  return buffers.find(name);
}

}  // namespace

void SegmentationModelImpl::replace_tensors(const std::map<std::string, torch::Tensor>& values) {
  auto params = named_parameters(true);
  auto buffers = named_buffers(true);
  torch::NoGradGuard no_grad;
  for (const auto& [name, value] : values) {
    torch::Tensor* t = find_tensor(params, buffers, name);
    require(t != nullptr, config_.arch + ": resizing tensor '" + name + "': the model has no such tensor");
    require(value.dim() == t->dim(), config_.arch + ": resizing tensor '" + name + "' from " + shape_text(t->sizes()) +
                                         " to " + shape_text(value.sizes()) + ": the rank must stay the same");
    if (t->grad().defined()) t->mutable_grad().reset();
    // set_data swaps the storage of the existing tensor, so the module's member (weight, bias,
    // running_mean, ...) and the registered parameter stay one object.
    t->set_data(value.detach().to(t->scalar_type()).contiguous().clone());
    resized_[name] = value.sizes().vec();
  }
  fit_module_options(*this);
}

void SegmentationModelImpl::resize_tensors(const std::map<std::string, std::vector<int64_t>>& shapes) {
  std::map<std::string, torch::Tensor> values;
  for (const auto& [name, shape] : shapes) {
    for (int64_t d : shape) require(d >= 1, config_.arch + ": tensor '" + name + "' cannot have shape " + nlohmann::json(shape).dump());
    values[name] = torch::zeros(shape);
  }
  replace_tensors(values);
}

}  // namespace leanseg
