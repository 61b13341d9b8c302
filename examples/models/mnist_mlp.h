// The MNIST MLP (784-512-512-10, ReLU); used by examples/mnist_mlp and
// examples/calibrate, whose checkpoints share its parameter names (fc1.weight, ...).
#pragma once

#include <memory>

#include "bridle.h"

namespace bridle::models {

// images [B, 1, 28, 28] -> logits [B, 10]
class Mlp : public Module {
 public:
  // Layer names become parameter names: fc1.weight, fc1.bias, ...
  Mlp() : Module("Mlp") {
    fc1_ = register_module("fc1", std::make_shared<Linear>(784, 512));
    fc2_ = register_module("fc2", std::make_shared<Linear>(512, 512));
    fc3_ = register_module("fc3", std::make_shared<Linear>(512, 10));
  }
  Tensor forward(const Tensor& images) override {
    Tensor x = flatten(images);
    x = relu(fc1_->forward(x));
    x = relu(fc2_->forward(x));
    return fc3_->forward(x);
  }

 private:
  std::shared_ptr<Linear> fc1_, fc2_, fc3_;
};

}  // namespace bridle::models
