// SGD's fused update on a GPU: the same rule as cpu::sgd_step (sgd.cpp, sgd.h),
// one thread per element, one read of each tensor.
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

__global__ void sgd_step_kernel(float* param, const float* grad, float* momentum_buffer, int64_t n,
                                float lr, float momentum, float dampening, float weight_decay,
                                bool nesterov, bool first) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) {
    float g = grad[i] + weight_decay * param[i];
    if (momentum != 0.0f) {
      const float buf = first ? g : momentum * momentum_buffer[i] + (1.0f - dampening) * g;
      momentum_buffer[i] = buf;
      g = nesterov ? g + momentum * buf : buf;
    }
    param[i] -= lr * g;
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
