// The per-element update rules of the fused optimizer kernels, written once and
// compiled twice: into the CPU loops (sgd.cpp, adam.cpp, rmsprop.cpp, adagrad.cpp,
// vectorized by the compiler) and into the CUDA kernels (the .cu beside each, one
// thread per element).
// Each takes one element's parameter, gradient and state and updates them in
// place; the per-step scalars (bias corrections, step size) are derived once on
// the host. Keeping one copy is what makes the two devices agree: a change to a
// rule cannot reach one of them only.
//
// Only plain float arithmetic here (no std:: functions, which device code lacks):
// sqrtf is IEEE square root on both, and the maximum is written out.
#pragma once

#if defined(__CUDACC__)
#define BRIDLE_HOST_DEVICE __host__ __device__
#else
#define BRIDLE_HOST_DEVICE
#endif

#include <math.h>  // sqrtf, for host and device alike

namespace bridle::update_rules {

// SGD with momentum, dampening, weight decay and Nesterov, as torch.optim.SGD:
//   g = grad + weight_decay p
//   buf = g (first step) or momentum buf + (1 - dampening) g
//   p -= lr (nesterov ? g + momentum buf : buf)      (p -= lr g without momentum)
// momentum_buffer is not touched when momentum is 0.
BRIDLE_HOST_DEVICE inline void sgd(float& param, float grad, float* momentum_buffer, float lr,
                                   float momentum, float dampening, float weight_decay,
                                   bool nesterov, bool first) {
  float g = grad + weight_decay * param;
  if (momentum != 0.0f) {
    const float buf = first ? g : momentum * *momentum_buffer + (1.0f - dampening) * g;
    *momentum_buffer = buf;
    g = nesterov ? g + momentum * buf : buf;
  }
  param -= lr * g;
}

// The per-step scalars of Adam and AdamW (cpu::adam_scalars derives them).
// decay multiplies p (AdamW: 1 - lr weight_decay, Adam: 1) and l2 scales the p
// added to the gradient (Adam: weight_decay, AdamW: 0), so one rule serves both
// without a branch: p * 1 and g + 0 * p are exact (for finite p).
struct AdamScalars {
  float decay, l2, one_minus_beta1, one_minus_beta2, bias_correction2_sqrt, neg_step_size;
};

// Adam / AdamW, as torch.optim.Adam(W):
//   m = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2  (amsgrad: v_max = max(v_max, v))
//   p = decay p - step_size m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
template <bool kAmsgrad>
BRIDLE_HOST_DEVICE inline void adam(float& param, float grad, float& exp_avg, float& exp_avg_sq,
                                    float* max_exp_avg_sq, const AdamScalars& k, float beta1,
                                    float beta2, float eps) {
  const float p = param * k.decay;
  const float g = grad + k.l2 * param;
  const float m = exp_avg * beta1 + k.one_minus_beta1 * g;
  float v = exp_avg_sq * beta2 + k.one_minus_beta2 * g * g;
  exp_avg = m;
  exp_avg_sq = v;
  if constexpr (kAmsgrad) {
    v = *max_exp_avg_sq < v ? v : *max_exp_avg_sq;  // std::max's choice on ties
    *max_exp_avg_sq = v;
  }
  const float denom = sqrtf(v) / k.bias_correction2_sqrt + eps;
  param = p + k.neg_step_size * m / denom;
}

// RMSprop, as torch.optim.RMSprop:
//   g = grad + weight_decay p,  s = alpha s + (1 - alpha) g^2
//   centered: a = alpha a + (1 - alpha) g, avg = sqrt(s - a^2) + eps; else avg = sqrt(s) + eps
//   momentum: b = momentum b + g / avg, p -= lr b; else p -= lr g / avg
// grad_avg is null unless centered, momentum_buffer null without momentum.
template <bool kCentered, bool kMomentum>
BRIDLE_HOST_DEVICE inline void rmsprop(float& param, float grad, float& square_avg, float* grad_avg,
                                       float* momentum_buffer, float lr, float alpha,
                                       float one_minus_alpha, float eps, float weight_decay,
                                       float momentum) {
  const float g = grad + weight_decay * param;
  const float s = square_avg * alpha + one_minus_alpha * g * g;
  square_avg = s;
  float avg;
  if constexpr (kCentered) {
    const float a = *grad_avg * alpha + one_minus_alpha * g;
    *grad_avg = a;
    avg = sqrtf(s - a * a) + eps;
  } else {
    avg = sqrtf(s) + eps;
  }
  if constexpr (kMomentum) {
    const float b = *momentum_buffer * momentum + g / avg;
    *momentum_buffer = b;
    param -= lr * b;
  } else {
    param -= lr * g / avg;
  }
}

// Adagrad, as torch.optim.Adagrad, with neg_clr = -lr / (1 + (step - 1) lr_decay)
// derived on the host:
//   g = grad + weight_decay p,  sum += g^2,  p += neg_clr g / (sqrt(sum) + eps)
BRIDLE_HOST_DEVICE inline void adagrad(float& param, float grad, float& sum, float neg_clr,
                                       float weight_decay, float eps) {
  const float g = grad + weight_decay * param;
  const float s = sum + g * g;
  sum = s;
  param += neg_clr * g / (sqrtf(s) + eps);
}

}  // namespace bridle::update_rules
