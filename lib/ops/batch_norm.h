// Batch normalization over the channel dim, with PyTorch's semantics.
//
// Shapes: x [N, C] or [N, C, *] (e.g. [N, C, H, W]); running_mean, running_var,
// weight, bias [C]. Each channel c is normalized over its M = N * prod(*) values:
//   y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c
// Training: mean_c and var_c are the batch's (biased variance, divided by M), and
// the running statistics, when given, are updated in place (not recorded):
//   running_mean = (1 - momentum) running_mean + momentum mean_c
//   running_var  = (1 - momentum) running_var  + momentum var_c M / (M - 1)   (unbiased)
// Training needs M > 1. Evaluation (training = false) uses the running statistics,
// which must then be given. weight and bias are optional (affine = false: 1 and 0).
//
// Kernels: the naive loops in batch_norm.cpp are the reference (double sums); the
// op runs oneDNN's batch_normalization primitives (cached per shape), and the
// tests hold one to the other. CUDA tensors go to cuDNN (batch_norm.cu), in
// builds that found it.
#pragma once

#include "core/tensor.h"

namespace bridle {

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, float momentum = 0.1f,
                  float eps = 1e-5f);

namespace cpu {

// Layout [N, C, HW]: channel c of sample n is HW contiguous values.
// weight and bias may be null (1 and 0); in backward, any of dx, dw, db may be
// null (not wanted), and gradients accumulate (dx += ...).

// mean[c] and biased var[c] of each channel's N HW values.
void batch_norm_stats_naive(float* mean, float* var, const float* x, int64_t N, int64_t C,
                            int64_t HW);
// y = (x - mean) / sqrt(var + eps) * weight + bias, with the given statistics.
void batch_norm_forward_naive(float* y, const float* x, const float* mean, const float* var,
                              const float* weight, const float* bias, int64_t N, int64_t C,
                              int64_t HW, float eps);
// training = true: mean and var were the batch's, so the gradient also flows
// through them; false: they were constants (the running statistics).
void batch_norm_backward_naive(float* dx, float* dw, float* db, const float* dy, const float* x,
                               const float* mean, const float* var, const float* weight, int64_t N,
                               int64_t C, int64_t HW, float eps, bool training);

// oneDNN. Training: computes the batch statistics into mean and var (biased) and
// normalizes with them; evaluation: reads mean and var. x is [N, C, ...] plain or
// a 4-D tensor in a blocked layout; y comes back in x's layout. weight and bias
// may be undefined. The backward returns a new dx (in x's layout) and
// accumulates into dw and db (either may be undefined).
Tensor batch_norm_forward_onednn(const Tensor& x, const Tensor& mean, const Tensor& var,
                                 const Tensor& weight, const Tensor& bias, float eps,
                                 bool training);
Tensor batch_norm_backward_onednn(const Tensor& dw, const Tensor& db, const Tensor& dy,
                                  const Tensor& x, const Tensor& mean, const Tensor& var,
                                  const Tensor& weight, const Tensor& bias, float eps,
                                  bool training);

}  // namespace cpu
}  // namespace bridle
