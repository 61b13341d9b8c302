// CIFAR ResNets (He et al. 2016): basic blocks, depth 6n + 2 (ResNet-20: n = 3);
// used by examples/cifar10_resnet and bench/convnet_train.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "bridle.h"

namespace bridle::models {

// conv3x3 - BN - ReLU - conv3x3 - BN, plus the shortcut, then ReLU.
class BasicBlock : public Module {
 public:
  BasicBlock(int64_t in, int64_t out, int64_t stride) : Module("BasicBlock") {
    conv1_ = register_module("conv1", conv(in, out, 3, stride));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(out));
    conv2_ = register_module("conv2", conv(out, out, 3, 1));
    bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(out));
    if (stride != 1 || in != out) {
      shortcut_conv_ = register_module("shortcut_conv", conv(in, out, 1, stride));
      shortcut_bn_ = register_module("shortcut_bn", std::make_shared<BatchNorm2d>(out));
    }
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = relu(bn1_->forward(conv1_->forward(x)));
    y = bn2_->forward(conv2_->forward(y));
    Tensor shortcut = shortcut_conv_ ? shortcut_bn_->forward(shortcut_conv_->forward(x)) : x;
    return relu(y + shortcut);
  }

  static std::shared_ptr<Conv2d> conv(int64_t in, int64_t out, int64_t k, int64_t stride) {
    Conv2dOptions options{.stride = {stride, stride}, .padding = {k / 2, k / 2}};
    return std::make_shared<Conv2d>(in, out, k, options, /*bias=*/false);
  }

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_, shortcut_conv_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_, shortcut_bn_;
};

// images [B, 3, 32, 32] -> logits [B, 10]. depth = 6n + 2 (20: n = 3).
class CifarResNet : public Module {
 public:
  explicit CifarResNet(int64_t blocks_per_stage) : Module("CifarResNet") {
    stem_ = register_module("conv1", BasicBlock::conv(3, 16, 3, 1));
    bn_ = register_module("bn1", std::make_shared<BatchNorm2d>(16));
    stages_ = register_module("stages", std::make_shared<Sequential>());
    int64_t channels = 16;
    for (int64_t width : {16, 32, 64}) {
      for (int64_t b = 0; b < blocks_per_stage; ++b) {
        int64_t stride = (b == 0 && width != 16) ? 2 : 1;
        stages_->push_back(std::make_shared<BasicBlock>(channels, width, stride));
        channels = width;
      }
    }
    fc_ = register_module("fc", std::make_shared<Linear>(64, 10));
  }
  Tensor forward(const Tensor& images) override {
    Tensor x = relu(bn_->forward(stem_->forward(images)));  // [B, 16, 32, 32]
    x = stages_->forward(x);                                // [B, 64, 8, 8]
    x = flatten(adaptive_avg_pool2d(x, 1));                 // [B, 64]
    return fc_->forward(x);
  }

 private:
  std::shared_ptr<Conv2d> stem_;
  std::shared_ptr<BatchNorm2d> bn_;
  std::shared_ptr<Sequential> stages_;
  std::shared_ptr<Linear> fc_;
};

}  // namespace bridle::models
