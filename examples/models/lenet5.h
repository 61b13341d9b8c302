// LeNet-5 (LeCun et al. 1998) with ReLU and max pooling; used by
// examples/mnist_lenet and bench/convnet_train.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "bridle.h"

namespace bridle::models {

// images [B, 1, 28, 28] -> logits [B, 10]
class LeNet5 : public Module {
 public:
  LeNet5() : Module("LeNet5") {
    conv1_ = register_module("conv1",
                             std::make_shared<Conv2d>(1, 6, 5, Conv2dOptions{.padding = {2, 2}}));
    conv2_ = register_module("conv2", std::make_shared<Conv2d>(6, 16, 5));
    fc1_ = register_module("fc1", std::make_shared<Linear>(16 * 5 * 5, 120));
    fc2_ = register_module("fc2", std::make_shared<Linear>(120, 84));
    fc3_ = register_module("fc3", std::make_shared<Linear>(84, 10));
  }
  Tensor forward(const Tensor& images) override {
    Tensor x = max_pool2d(relu(conv1_->forward(images)), 2);  // [B, 6, 14, 14]
    x = max_pool2d(relu(conv2_->forward(x)), 2);              // [B, 16, 5, 5]
    x = relu(fc1_->forward(flatten(x)));
    x = relu(fc2_->forward(x));
    return fc3_->forward(x);
  }

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_;
  std::shared_ptr<Linear> fc1_, fc2_, fc3_;
};

}  // namespace bridle::models
