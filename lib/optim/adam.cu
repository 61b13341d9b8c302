// Adam's and AdamW's fused update on a GPU: update_rules::adam (the rule the CPU
// loop in adam.cpp runs too), one thread per element, with the per-step scalars
// derived on the host (cpu::adam_scalars).
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"
#include "optim/update_rules.h"

namespace bridle::cuda {
namespace {

template <bool kAmsgrad>
__global__ void adam_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                            float* max_exp_avg_sq, int64_t n, update_rules::AdamScalars k,
                            float beta1, float beta2, float eps) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) {
    update_rules::adam<kAmsgrad>(param[i], grad[i], exp_avg[i], exp_avg_sq[i],
                                 kAmsgrad ? max_exp_avg_sq + i : nullptr, k, beta1, beta2, eps);
  }
}

}  // namespace

void adam_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                 float* max_exp_avg_sq, int64_t n, const update_rules::AdamScalars& k, float beta1,
                 float beta2, float eps) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  auto* kernel = max_exp_avg_sq != nullptr ? adam_kernel<true> : adam_kernel<false>;
  kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(
      param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, k, beta1, beta2, eps);
  BRIDLE_CUDA_CHECK_LAUNCH("adam_kernel");
}

}  // namespace bridle::cuda
