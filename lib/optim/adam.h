// Adam and AdamW: PyTorch's update rules and defaults (torch/optim/adam.py and
// adamw.py, torch 1.13; the single-tensor path, in float32).
//
// Per parameter p with gradient g, at p's own step t (from 1; a step() that
// finds no gradient for p leaves p, its state and its t alone):
//   Adam:  g = g + weight_decay * p                 (L2: into the gradient)
//   AdamW: p = p * (1 - lr * weight_decay)          (decoupled, before the update)
//   m = beta1 * m + (1 - beta1) * g                 exp_avg
//   v = beta2 * v + (1 - beta2) * g^2               exp_avg_sq
//   v_max = max(v_max, v)                           max_exp_avg_sq (amsgrad only)
//   denom = sqrt(amsgrad ? v_max : v) / sqrt(1 - beta2^t) + eps
//   p = p - lr / (1 - beta1^t) * m / denom
// m, v and v_max start at zero at p's first step. eps is added outside the
// square root, after the bias correction, as in PyTorch. One fused pass over
// p, g, m, v (and v_max) per parameter: cpu::adam_step in adam.cpp.
//
// lr and weight_decay are per parameter group (optimizer.h); the options'
// values are the defaults of groups that do not set their own.
//
// state(): type "Adam" or "AdamW"; hyper-parameters lr, beta1, beta2, eps,
// weight_decay and amsgrad (0/1); the groups' settings; per_parameter "step"
// (p's step count t as a float32 [1] tensor, like PyTorch's state['step']),
// "exp_avg", "exp_avg_sq" and, with amsgrad, "max_exp_avg_sq". Entries are
// undefined for a parameter no gradient has reached yet.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "optim/optimizer.h"
#include "optim/update_rules.h"

namespace bridle {

struct AdamOptions {
  float lr = 1e-3f;
  std::array<float, 2> betas = {0.9f, 0.999f};  // each in [0, 1)
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // L2 penalty, added to the gradient
  bool amsgrad = false;
};

// As AdamOptions, but weight decay is decoupled and defaults to 1e-2.
struct AdamWOptions {
  float lr = 1e-3f;
  std::array<float, 2> betas = {0.9f, 0.999f};
  float eps = 1e-8f;
  float weight_decay = 1e-2f;  // p *= 1 - lr * weight_decay each step
  bool amsgrad = false;
};

// What Adam and AdamW share: everything but the weight decay's place.
class AdamBase : public Optimizer {
 public:
  void step() override;
  OptimizerState state() const override;
  void load_state(const OptimizerState& state) override;
  // Parameter i's moments (undefined before its first step; max_exp_avg_sq
  // only with amsgrad) and the number of steps it has taken.
  const Tensor& exp_avg(size_t i) const { return exp_avg_.at(i); }
  const Tensor& exp_avg_sq(size_t i) const { return exp_avg_sq_.at(i); }
  const Tensor& max_exp_avg_sq(size_t i) const { return max_exp_avg_sq_.at(i); }
  int64_t param_step(size_t i) const { return steps_.at(i); }

 protected:
  // type: "Adam" or "AdamW"; decoupled: AdamW's weight decay.
  AdamBase(std::vector<ParamGroup> groups, const AdamOptions& options, const char* type,
           bool decoupled);
  AdamOptions options_;  // for AdamW, its AdamWOptions

 private:
  const char* type_;
  bool decoupled_;
  std::vector<int64_t> steps_;  // per parameter
  std::vector<Tensor> exp_avg_, exp_avg_sq_, max_exp_avg_sq_;
};

class Adam : public AdamBase {
 public:
  explicit Adam(std::vector<Tensor> params, AdamOptions options = {});
  explicit Adam(std::vector<ParamGroup> groups, AdamOptions options = {});
  // The options (after load_state, the loaded ones; change lr with set_lr()).
  const AdamOptions& options() const { return options_; }
};

class AdamW : public AdamBase {
 public:
  explicit AdamW(std::vector<Tensor> params, AdamWOptions options = {});
  explicit AdamW(std::vector<ParamGroup> groups, AdamWOptions options = {});
  AdamWOptions options() const;
};

namespace cpu {
// The per-step scalars of the update (update_rules.h), derived as PyTorch does
// (adam.cpp); the CUDA kernel (adam.cu) takes them ready-made.
using AdamScalars = update_rules::AdamScalars;
AdamScalars adam_scalars(float lr, float beta1, float beta2, float weight_decay, bool decoupled,
                         int64_t step);
// One Adam (decoupled = false) or AdamW update of n elements at the
// parameter's step `step` (from 1). max_exp_avg_sq: null without amsgrad.
void adam_step(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
               float* max_exp_avg_sq, int64_t n, float lr, float beta1, float beta2, float eps,
               float weight_decay, bool decoupled, int64_t step);
}  // namespace cpu

}  // namespace bridle
