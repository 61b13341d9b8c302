// RMSprop's fused update on a GPU: update_rules::rmsprop (the rule the CPU loop in
// rmsprop.cpp runs too), one thread per element, one read of each tensor.
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"
#include "optim/update_rules.h"

namespace bridle::cuda {
namespace {

template <bool kCentered, bool kMomentum>
__global__ void rmsprop_kernel(float* param, const float* grad, float* square_avg, float* grad_avg,
                               float* momentum_buffer, int64_t n, float lr, float alpha,
                               float one_minus_alpha, float eps, float weight_decay,
                               float momentum) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) {
    update_rules::rmsprop<kCentered, kMomentum>(
        param[i], grad[i], square_avg[i], kCentered ? grad_avg + i : nullptr,
        kMomentum ? momentum_buffer + i : nullptr, lr, alpha, one_minus_alpha, eps, weight_decay,
        momentum);
  }
}

}  // namespace

void rmsprop_step(float* param, const float* grad, float* square_avg, float* grad_avg,
                  float* momentum_buffer, int64_t n, float lr, float alpha, float one_minus_alpha,
                  float eps, float weight_decay, float momentum) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  const bool centered = grad_avg != nullptr, with_momentum = momentum_buffer != nullptr;
  auto* kernel = centered
                     ? (with_momentum ? rmsprop_kernel<true, true> : rmsprop_kernel<true, false>)
                     : (with_momentum ? rmsprop_kernel<false, true> : rmsprop_kernel<false, false>);
  kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(
      param, grad, square_avg, grad_avg, momentum_buffer, n, lr, alpha, one_minus_alpha, eps,
      weight_decay, momentum);
  BRIDLE_CUDA_CHECK_LAUNCH("rmsprop_kernel");
}

}  // namespace bridle::cuda
