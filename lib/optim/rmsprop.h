// RMSprop: PyTorch's update rule and defaults (torch/optim/rmsprop.py, torch
// 1.13; the single-tensor path, in float32).
//
// Per parameter p with gradient g (a step() that finds no gradient for p
// leaves p and its state alone):
//   g = g + weight_decay * p
//   s = alpha * s + (1 - alpha) * g^2                 square_avg
//   centered:  a = alpha * a + (1 - alpha) * g         grad_avg
//              avg = sqrt(s - a^2) + eps
//   otherwise: avg = sqrt(s) + eps
//   momentum > 0: b = momentum * b + g / avg           momentum_buffer
//                 p = p - lr * b
//   otherwise:    p = p - lr * g / avg
// s, a and b start at zero at p's first step (unlike SGD, whose buffer starts
// at g), and eps is added outside the square root. One fused pass per
// parameter: cpu::rmsprop_step in rmsprop.cpp.
//
// lr and weight_decay are per parameter group (optimizer.h); the options'
// values are the defaults of groups that do not set their own.
//
// state(): type "RMSprop"; hyper-parameters lr, alpha, eps, weight_decay,
// momentum and centered (0/1); the groups' settings; per_parameter "step" (the
// parameter's step count as a float32 [1] tensor: PyTorch keeps one, unused by
// the rule), "square_avg", "momentum_buffer" (with momentum > 0) and
// "grad_avg" (centered). Entries are undefined for a parameter no gradient has
// reached yet.
#pragma once

#include <cstdint>
#include <vector>

#include "optim/optimizer.h"

namespace bridle {

struct RMSpropOptions {
  float lr = 1e-2f;
  float alpha = 0.99f;  // smoothing of the squared-gradient average
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // L2 penalty, added to the gradient
  float momentum = 0.0f;
  bool centered = false;  // normalize by an estimate of the gradient's variance
};

class RMSprop : public Optimizer {
 public:
  explicit RMSprop(std::vector<Tensor> params, RMSpropOptions options = {});
  explicit RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options = {});
  void step() override;
  OptimizerState state() const override;
  void load_state(const OptimizerState& state) override;
  // The options (after load_state, the loaded ones; change lr with set_lr()).
  const RMSpropOptions& options() const { return options_; }
  // Parameter i's state: undefined before its first step (momentum_buffer
  // only with momentum, grad_avg only when centered).
  const Tensor& square_avg(size_t i) const { return square_avg_.at(i); }
  const Tensor& momentum_buffer(size_t i) const { return momentum_buffer_.at(i); }
  const Tensor& grad_avg(size_t i) const { return grad_avg_.at(i); }
  int64_t param_step(size_t i) const { return steps_.at(i); }

 private:
  RMSpropOptions options_;
  std::vector<int64_t> steps_;  // per parameter
  std::vector<Tensor> square_avg_, momentum_buffer_, grad_avg_;
};

namespace cpu {
// One RMSprop update of n elements. grad_avg: null unless centered;
// momentum_buffer: null unless momentum > 0.
void rmsprop_step(float* param, const float* grad, float* square_avg, float* grad_avg,
                  float* momentum_buffer, int64_t n, float lr, float alpha, float eps,
                  float weight_decay, float momentum);
// 1 - alpha, in double and then float32 as PyTorch (the CUDA update takes it too).
inline float rmsprop_one_minus_alpha(float alpha) { return static_cast<float>(1.0 - alpha); }
}  // namespace cpu

}  // namespace bridle
