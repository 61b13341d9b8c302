// The per-element update rules of the fused optimizer kernels, written once and
// compiled twice: into the CPU loops (sgd.cpp, adam.cpp, vectorized by the
// compiler) and into the CUDA kernels (sgd.cu, adam.cu, one thread per element).
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

}  // namespace bridle::update_rules
