// GELU and leaky ReLU on a GPU: the CUDA kernels (the ops, the CPU kernels and
// the derivatives, with their formulas, are in activations.cpp; these are the
// same, in float).
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

constexpr int kThreads = 256;

constexpr float kSqrtHalf = 0.70710678118654752f;     // 1 / sqrt(2)
constexpr float kInvSqrt2Pi = 0.39894228040143268f;   // 1 / sqrt(2 pi)
constexpr float kSqrt2OverPi = 0.79788456080286536f;  // sqrt(2 / pi)
constexpr float kCubic = 0.044715f;

__device__ float gelu(float x, bool tanh_form) {
  if (tanh_form) return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + kCubic * x * x * x)));
  return 0.5f * x * (1.0f + erff(x * kSqrtHalf));
}

// exact: Phi(x) + x phi(x);  tanh: 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2)
__device__ float gelu_grad(float x, bool tanh_form) {
  if (tanh_form) {
    const float t = tanhf(kSqrt2OverPi * (x + kCubic * x * x * x));
    return 0.5f * (1.0f + t) +
           0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
  }
  const float cdf = 0.5f * (1.0f + erff(x * kSqrtHalf));
  const float pdf = kInvSqrt2Pi * expf(-0.5f * x * x);
  return cdf + x * pdf;
}

__global__ void gelu_forward_kernel(float* y, const float* x, int64_t n, bool tanh_form) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) y[i] = gelu(x[i], tanh_form);
}

__global__ void gelu_backward_kernel(float* dx, const float* x, const float* dy, int64_t n,
                                     bool tanh_form, bool accumulate) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) {
    const float g = dy[i] * gelu_grad(x[i], tanh_form);
    dx[i] = accumulate ? dx[i] + g : g;
  }
}

__global__ void leaky_relu_forward_kernel(float* y, const float* x, int64_t n,
                                          float negative_slope) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) y[i] = x[i] > 0.0f ? x[i] : x[i] * negative_slope;
}

// f'(x) = 1 if x > 0 else a (a at the kink, as the CPU).
__global__ void leaky_relu_backward_kernel(float* dx, const float* x, const float* dy, int64_t n,
                                           float negative_slope, bool accumulate) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) {
    const float g = x[i] > 0.0f ? dy[i] : dy[i] * negative_slope;
    dx[i] = accumulate ? dx[i] + g : g;
  }
}

}  // namespace

void gelu_forward(float* y, const float* x, int64_t n, bool tanh_form) {
  if (n == 0) return;
  gelu_forward_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(y, x, n, tanh_form);
  BRIDLE_CUDA_CHECK_LAUNCH("gelu_forward_kernel");
}

void gelu_backward(float* dx, const float* x, const float* dy, int64_t n, bool tanh_form,
                   bool accumulate) {
  if (n == 0) return;
  gelu_backward_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(dx, x, dy, n, tanh_form,
                                                                           accumulate);
  BRIDLE_CUDA_CHECK_LAUNCH("gelu_backward_kernel");
}

void leaky_relu_forward(float* y, const float* x, int64_t n, float negative_slope) {
  if (n == 0) return;
  leaky_relu_forward_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(y, x, n,
                                                                                negative_slope);
  BRIDLE_CUDA_CHECK_LAUNCH("leaky_relu_forward_kernel");
}

void leaky_relu_backward(float* dx, const float* x, const float* dy, int64_t n,
                         float negative_slope, bool accumulate) {
  if (n == 0) return;
  leaky_relu_backward_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(
      dx, x, dy, n, negative_slope, accumulate);
  BRIDLE_CUDA_CHECK_LAUNCH("leaky_relu_backward_kernel");
}

}  // namespace bridle::cuda
