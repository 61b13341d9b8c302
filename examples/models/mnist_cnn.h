// The CNN of PyTorch's MNIST example; used by examples/mnist_cnn and
// bench/convnet_train.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "bridle.h"

namespace bridle::models {

// images [B, 1, 28, 28] -> logits [B, 10]
class MnistCnn : public Module {
 public:
  explicit MnistCnn(uint64_t seed) : Module("MnistCnn") {
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(1, 32, 3));
    conv2_ = register_module("conv2", std::make_shared<Conv2d>(32, 64, 3));
    dropout1_ = register_module("dropout1", std::make_shared<Dropout>(0.25f, seed + 1));
    fc1_ = register_module("fc1", std::make_shared<Linear>(64 * 12 * 12, 128));
    dropout2_ = register_module("dropout2", std::make_shared<Dropout>(0.5f, seed + 2));
    fc2_ = register_module("fc2", std::make_shared<Linear>(128, 10));
  }
  // The dropout layers' random generators, for checkpoints.
  std::map<std::string, Generator*> generators() {
    return {{"dropout1", &dropout1_->generator()}, {"dropout2", &dropout2_->generator()}};
  }
  Tensor forward(const Tensor& images) override {
    Tensor x = relu(conv1_->forward(images));     // [B, 32, 26, 26]
    x = max_pool2d(relu(conv2_->forward(x)), 2);  // [B, 64, 12, 12]
    x = dropout1_->forward(x);
    x = relu(fc1_->forward(flatten(x)));
    return fc2_->forward(dropout2_->forward(x));
  }

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_;
  std::shared_ptr<Dropout> dropout1_, dropout2_;
  std::shared_ptr<Linear> fc1_, fc2_;
};

}  // namespace bridle::models
