// Gradient clipping on a GPU: the kernels of clip_grad.cpp's norm, scale and
// clamp (the functions and the CPU kernels are there).
//
// The norm's partials are the CPU's: one per block of kNormBlock elements, in
// double, combined on the host in block order, so the total does not depend on
// the device's scheduling (only the order of the adds inside a block differs
// from the CPU loop, by double rounding).
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

constexpr int kThreads = 256;

// Block b of the grid reduces elements [b * block, (b + 1) * block) of g.
__global__ void grad_norm_partials_kernel(const float* g, int64_t n, int64_t block, double p,
                                          double inv_scale, double* partials) {
  const int64_t begin = blockIdx.x * block, end = min(n, begin + block);
  const bool is_max = isinf(p);
  double acc = 0.0;
  bool nan = false;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double a = fabs(static_cast<double>(g[i]));
    if (is_max) {
      acc = a > acc ? a : acc;
      nan = nan || isnan(a);
    } else if (p == 1.0) {
      acc += a;
    } else if (p == 2.0) {
      acc += a * a;
    } else {
      acc += pow(a * inv_scale, p);
    }
  }
  if (is_max) {
    if (nan) acc = NAN;
    // max that keeps a NaN: (NaN > x) is false, so test for it first.
    acc = block_reduce(
              Double{acc},
              [](Double x, Double y) { return isnan(x.v)                  ? x
                                              : (isnan(y.v) || y.v > x.v) ? y
                                                                          : x; },
              Double{0.0})
              .v;
  } else {
    acc = block_reduce(
              Double{acc}, [](Double x, Double y) { return Double{x.v + y.v}; }, Double{0.0})
              .v;
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void scale_kernel(float* x, int64_t n, float factor) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) { x[i] *= factor; }
}

__global__ void clamp_kernel(float* x, int64_t n, float lo, float hi) {
  // Written so that NaN falls through both comparisons and stays NaN.
  BRIDLE_GRID_STRIDE_LOOP(i, n) { x[i] = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]); }
}

}  // namespace

void grad_norm_partials(const float* g, int64_t n, int64_t block, double p, double inv_scale,
                        double* partials) {
  if (n == 0) return;
  const int64_t blocks = (n + block - 1) / block;
  grad_norm_partials_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream()>>>(
      g, n, block, p, inv_scale, partials);
  BRIDLE_CUDA_CHECK_LAUNCH("grad_norm_partials_kernel");
}

void scale_(float* x, int64_t n, float factor) {
  if (n == 0) return;
  scale_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(x, n, factor);
  BRIDLE_CUDA_CHECK_LAUNCH("scale_kernel");
}

void clamp_(float* x, int64_t n, float lo, float hi) {
  if (n == 0) return;
  clamp_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(x, n, lo, hi);
  BRIDLE_CUDA_CHECK_LAUNCH("clamp_kernel");
}

}  // namespace bridle::cuda
