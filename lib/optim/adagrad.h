// Adagrad: PyTorch's update rule and defaults (torch/optim/adagrad.py, torch
// 1.13; dense gradients, the single-tensor path, in float32).
//
// Per parameter p with gradient g, at p's own step t (from 1; a step() that
// finds no gradient for p leaves p, its sum and its t alone):
//   g = g + weight_decay * p
//   clr = lr / (1 + (t - 1) * lr_decay)
//   sum = sum + g^2                                   sum
//   p = p - clr * g / (sqrt(sum) + eps)
// Unlike Adam and RMSprop, every parameter's sum is created with the optimizer,
// filled with initial_accumulator_value, and its step count starts at 0 (as
// PyTorch's Adagrad.__init__ does). One fused pass per parameter:
// cpu::adagrad_step in adagrad.cpp.
//
// lr and weight_decay are per parameter group (optimizer.h); the options'
// values are the defaults of groups that do not set their own.
//
// state(): type "Adagrad"; hyper-parameters lr, lr_decay, weight_decay,
// initial_accumulator_value and eps; the groups' settings; per_parameter
// "step" (t as a float32 [1] tensor, like PyTorch's state['step']) and "sum",
// both defined for every parameter.
#pragma once

#include <cstdint>
#include <vector>

#include "optim/optimizer.h"

namespace bridle {

struct AdagradOptions {
  float lr = 1e-2f;
  float lr_decay = 0.0f;      // lr / (1 + (t - 1) * lr_decay) at step t
  float weight_decay = 0.0f;  // L2 penalty, added to the gradient
  float initial_accumulator_value = 0.0f;
  float eps = 1e-10f;
};

class Adagrad : public Optimizer {
 public:
  explicit Adagrad(std::vector<Tensor> params, AdagradOptions options = {});
  explicit Adagrad(std::vector<ParamGroup> groups, AdagradOptions options = {});
  void step() override;
  OptimizerState state() const override;
  void load_state(const OptimizerState& state) override;
  // The options (after load_state, the loaded ones; change lr with set_lr()).
  const AdagradOptions& options() const { return options_; }
  // Parameter i's sum of squared gradients (plus the initial value) and the
  // number of steps it has taken.
  const Tensor& sum(size_t i) const { return sum_.at(i); }
  int64_t param_step(size_t i) const { return steps_.at(i); }

 private:
  AdagradOptions options_;
  std::vector<int64_t> steps_;  // per parameter
  std::vector<Tensor> sum_;
};

namespace cpu {
// One Adagrad update of n elements at the parameter's step `step` (from 1).
void adagrad_step(float* param, const float* grad, float* sum, int64_t n, float lr, float lr_decay,
                  float weight_decay, float eps, int64_t step);
// -lr / (1 + (step - 1) lr_decay), the step's scale (the CUDA update takes it too).
float adagrad_neg_clr(float lr, float lr_decay, int64_t step);
}  // namespace cpu

}  // namespace bridle
