// SGD with momentum, dampening, Nesterov and weight decay: PyTorch's update rule.
//
// Per parameter p with gradient g (step t counts from 1):
//   g = g + weight_decay * p
//   if momentum != 0:
//     buf = g                                     (t == 1)
//     buf = momentum * buf + (1 - dampening) * g  (t > 1)
//     g = nesterov ? g + momentum * buf : buf
//   p = p - lr * g
// One fused pass over p, g and buf per parameter (kernel in sgd.cpp).
//
// lr and weight_decay are per parameter group (optimizer.h); the options' values
// are the defaults of groups that do not set their own.
//
// state(): type "SGD", hyper-parameters lr, momentum, dampening, weight_decay and
// nesterov (0/1), the groups' settings, and per_parameter["momentum_buffer"]
// (undefined entries until a parameter's first step, and always with momentum 0).
#pragma once

#include <vector>

#include "optim/optimizer.h"

namespace bridle {

struct SGDOptions {
  float lr = 0.01f;
  float momentum = 0.0f;
  float dampening = 0.0f;
  float weight_decay = 0.0f;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions options);
  SGD(std::vector<ParamGroup> groups, SGDOptions options);
  void step() override;
  OptimizerState state() const override;
  void load_state(const OptimizerState& state) override;
  // The options it was built with (change the learning rate with set_lr()).
  const SGDOptions& options() const { return options_; }
  // The momentum buffer of parameter i (undefined before the first step).
  const Tensor& momentum_buffer(size_t i) const { return momentum_buffers_.at(i); }

 private:
  SGDOptions options_;
  std::vector<Tensor> momentum_buffers_;
};

namespace cpu {
// One SGD update of n elements; `first` marks the step that initializes buf.
void sgd_step(float* param, const float* grad, float* momentum_buffer, int64_t n, float lr,
              float momentum, float dampening, float weight_decay, bool nesterov, bool first);
}  // namespace cpu

}  // namespace bridle
