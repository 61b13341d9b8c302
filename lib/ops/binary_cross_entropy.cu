// Binary cross-entropy from logits on a GPU: the CUDA kernels (the op, the CPU
// kernels and the derivation are in binary_cross_entropy.cpp). Both passes are
// elementwise, a thread per element, in the same stable form as the CPU:
//   loss = w [(1 - y) x + L (log1p(exp(-|x|)) + max(-x, 0))],  L = 1 + (pw - 1) y
//   dx   = g w (L sigmoid(x) - pw y).
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void bce_forward_kernel(float* loss, const float* x, const float* y, const float* weight,
                                   const float* pos_weight, int64_t n) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) {
    const float L = pos_weight ? 1.0f + (pos_weight[i] - 1.0f) * y[i] : 1.0f;
    const float softplus = log1pf(expf(-fabsf(x[i]))) + fmaxf(-x[i], 0.0f);
    loss[i] = (weight ? weight[i] : 1.0f) * ((1.0f - y[i]) * x[i] + L * softplus);
  }
}

// sigmoid without overflow: exp of a non-positive number only.
__device__ float stable_sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  const float e = expf(x);
  return e / (1.0f + e);
}

__global__ void bce_backward_kernel(float* dx, const float* x, const float* y, const float* weight,
                                    const float* pos_weight, const float* dout, float dout_scale,
                                    bool per_element, int64_t n, bool accumulate) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) {
    const float pw = pos_weight ? pos_weight[i] : 1.0f;
    const float L = 1.0f + (pw - 1.0f) * y[i];
    const float g = per_element ? dout[i] : dout[0] * dout_scale;
    const float d = g * (weight ? weight[i] : 1.0f) * (L * stable_sigmoid(x[i]) - pw * y[i]);
    dx[i] = accumulate ? dx[i] + d : d;
  }
}

}  // namespace

void bce_with_logits_forward(float* loss, const float* x, const float* y, const float* weight,
                             const float* pos_weight, int64_t n) {
  if (n == 0) return;
  bce_forward_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(loss, x, y, weight,
                                                                         pos_weight, n);
  BRIDLE_CUDA_CHECK_LAUNCH("bce_forward_kernel");
}

void bce_with_logits_backward(float* dx, const float* x, const float* y, const float* weight,
                              const float* pos_weight, const float* dout, float dout_scale,
                              bool per_element, int64_t n, bool accumulate) {
  if (n == 0) return;
  bce_backward_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(
      dx, x, y, weight, pos_weight, dout, dout_scale, per_element, n, accumulate);
  BRIDLE_CUDA_CHECK_LAUNCH("bce_backward_kernel");
}

}  // namespace bridle::cuda
