// Adam's and AdamW's fused update on a GPU: the loop of cpu::adam_step
// (adam.cpp), whose scalars (bias corrections, step size) the host derives.
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

template <bool kAmsgrad>
__global__ void adam_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                            float* max_exp_avg_sq, int64_t n, float decay, float l2, float beta1,
                            float one_minus_beta1, float beta2, float one_minus_beta2,
                            float bias_correction2_sqrt, float eps, float neg_step_size) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) {
    const float p = param[i] * decay;
    const float g = grad[i] + l2 * param[i];
    const float m = exp_avg[i] * beta1 + one_minus_beta1 * g;
    float v = exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    if constexpr (kAmsgrad) {
      v = fmaxf(max_exp_avg_sq[i], v);
      max_exp_avg_sq[i] = v;
    }
    const float denom = sqrtf(v) / bias_correction2_sqrt + eps;
    param[i] = p + neg_step_size * m / denom;
  }
}

}  // namespace

void adam_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                 float* max_exp_avg_sq, int64_t n, float decay, float l2, float beta1,
                 float one_minus_beta1, float beta2, float one_minus_beta2,
                 float bias_correction2_sqrt, float eps, float neg_step_size) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  auto* kernel = max_exp_avg_sq != nullptr ? adam_kernel<true> : adam_kernel<false>;
  kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(
      param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, decay, l2, beta1, one_minus_beta1, beta2,
      one_minus_beta2, bias_correction2_sqrt, eps, neg_step_size);
  BRIDLE_CUDA_CHECK_LAUNCH("adam_kernel");
}

}  // namespace bridle::cuda
