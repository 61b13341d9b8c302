// SGD's fused update on a GPU: update_rules::sgd (the rule the CPU loop in
// sgd.cpp runs too), one thread per element, one read of each tensor.
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"
#include "optim/update_rules.h"

namespace bridle::cuda {
namespace {

__global__ void sgd_step_kernel(float* param, const float* grad, float* momentum_buffer, int64_t n,
                                float lr, float momentum, float dampening, float weight_decay,
                                bool nesterov, bool first) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) {
    update_rules::sgd(param[i], grad[i], momentum_buffer ? momentum_buffer + i : nullptr, lr,
                      momentum, dampening, weight_decay, nesterov, first);
  }
}

}  // namespace

void sgd_step(float* param, const float* grad, float* momentum_buffer, int64_t n, float lr,
              float momentum, float dampening, float weight_decay, bool nesterov, bool first) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  sgd_step_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(
      param, grad, momentum_buffer, n, lr, momentum, dampening, weight_decay, nesterov, first);
  BRIDLE_CUDA_CHECK_LAUNCH("sgd_step_kernel");
}

}  // namespace bridle::cuda
