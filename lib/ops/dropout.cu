// Dropout: the CUDA kernels (the op, the CPU kernels and the mask's draws are in
// dropout.cpp, the formulas in dropout.h).
//
// The mask arrives on the device already drawn (on the host, from the op's
// Generator), so both kernels are plain grid-stride loops over x, y and mask:
//   y = x * mask,  dx (+)= dy * mask.
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void dropout_forward_kernel(float* y, const float* x, const float* mask, int64_t n) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) y[i] = x[i] * mask[i];
}

__global__ void dropout_backward_kernel(float* dx, const float* dy, const float* mask, int64_t n,
                                        bool accumulate) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) {
    const float g = dy[i] * mask[i];
    dx[i] = accumulate ? dx[i] + g : g;
  }
}

}  // namespace

void dropout_forward(float* y, const float* x, const float* mask, int64_t n) {
  if (n == 0) return;
  dropout_forward_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(y, x, mask, n);
  BRIDLE_CUDA_CHECK_LAUNCH("dropout_forward_kernel");
}

void dropout_backward(float* dx, const float* dy, const float* mask, int64_t n, bool accumulate) {
  if (n == 0) return;
  dropout_backward_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(dx, dy, mask, n,
                                                                              accumulate);
  BRIDLE_CUDA_CHECK_LAUNCH("dropout_backward_kernel");
}

}  // namespace bridle::cuda
