// Architectures of the zoo (constructed through the registry in registry.cpp).
#pragma once
#include "leanseg/error.h"
#include "leanseg/model.h"

namespace leanseg {

// M1 / M4: enc0 (trainable full-res conv) + MobileNetV2 encoder + ASPP + SE-residual decoder.
SegmentationModel make_mobilenet_aspp_se_unet(const ModelConfig& config);
// M2: Ronneberger U-Net (double conv+BN+ReLU, 4 poolings, transposed-conv up).
SegmentationModel make_unet(const ModelConfig& config);
// M3: depthwise-separable U-Net with bottleneck blocks and linear attention at the bottom.
SegmentationModel make_efficient_unet(const ModelConfig& config);

// smp-style U-Net over encoder `encoder` of the encoder registry (encoder.h): "unet-" + name.
SegmentationModel make_encoder_unet(const ModelConfig& config, const std::string& encoder);

// Reads an option that the registry has already defaulted and type-checked.
template <class T>
T option(const ModelConfig& c, const char* key) {
  return c.options.at(key).get<T>();
}

}  // namespace leanseg
