// Reductions on a GPU: sum / mean along a dim, max and argmax (the ops, the CPU
// kernels and the backward are in reduce.cpp).
//
// One block per output element reduces its row [o, :, i] (stride `inner`);
// simple and right for the shapes training uses (a loss over a batch, a row
// per example). A wide reduction over many short rows would want a thread per
// row instead: later.
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void sum_forward_kernel(float* out, const float* inp, int64_t n, int64_t inner,
                                   float scale) {
  const int64_t r = blockIdx.x, o = r / inner, i = r % inner;
  const float* row = inp + o * n * inner + i;
  float sum = 0.0f;
  for (int64_t k = threadIdx.x; k < n; k += blockDim.x) sum += row[k * inner];
  sum = block_sum(sum);
  if (threadIdx.x == 0) out[r] = sum * scale;
}

__global__ void sum_backward_kernel(float* dinp, const float* dout, int64_t outer, int64_t n,
                                    int64_t inner, float scale) {
  BRIDLE_GRID_STRIDE_LOOP(k, outer * n * inner) {
    const int64_t o = k / (n * inner), i = k % inner;
    dinp[k] += scale * dout[o * inner + i];
  }
}

// The best (value, index) so far; ties keep the first index, NaN beats everything.
struct Best {
  float value;
  int64_t index;
  __device__ static Best shuffle_xor(Best x, int offset) {
    return {__shfl_xor_sync(kFullMask, x.value, offset),
            __shfl_xor_sync(kFullMask, x.index, offset)};
  }
};

__device__ Best better(Best a, Best b) {
  if (a.index < 0) return b;
  if (b.index < 0) return a;
  const bool a_nan = isnan(a.value), b_nan = isnan(b.value);
  if (a_nan != b_nan) return a_nan ? a : b;
  if (a.value != b.value && !a_nan) return a.value > b.value ? a : b;
  return a.index < b.index ? a : b;
}

// out may be null (argmax wants the index only).
__global__ void argmax_kernel(float* out, int64_t* index, const float* inp, int64_t n,
                              int64_t inner) {
  const int64_t r = blockIdx.x, o = r / inner, i = r % inner;
  const float* row = inp + o * n * inner + i;
  Best best{0.0f, -1};  // index -1: nothing seen yet
  for (int64_t k = threadIdx.x; k < n; k += blockDim.x)
    best = better(best, Best{row[k * inner], k});
  best = block_reduce(
      best, [](Best a, Best b) { return better(a, b); }, Best{0.0f, -1});
  if (threadIdx.x == 0) {
    index[r] = best.index;
    if (out) out[r] = best.value;
  }
}

// Each output element sends its gradient to its own input element: no two
// threads write the same one.
__global__ void max_backward_kernel(float* dinp, const int64_t* index, const float* dout,
                                    int64_t outer, int64_t n, int64_t inner) {
  BRIDLE_GRID_STRIDE_LOOP(r, outer * inner) {
    const int64_t o = r / inner, i = r % inner;
    dinp[(o * n + index[r]) * inner + i] += dout[r];
  }
}

}  // namespace

void sum_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner,
                 float scale) {
  if (outer * inner == 0) return;
  check_fits_int("sum_forward_kernel (a block per output)", {outer * inner});
  sum_forward_kernel<<<static_cast<unsigned>(outer * inner), kThreads, 0, stream()>>>(out, inp, n,
                                                                                      inner, scale);
  BRIDLE_CUDA_CHECK_LAUNCH("sum_forward_kernel");
}

void sum_backward(float* dinp, const float* dout, int64_t outer, int64_t n, int64_t inner,
                  float scale) {
  if (outer * n * inner == 0) return;
  sum_backward_kernel<<<blocks_for(outer * n * inner, kThreads), kThreads, 0, stream()>>>(
      dinp, dout, outer, n, inner, scale);
  BRIDLE_CUDA_CHECK_LAUNCH("sum_backward_kernel");
}

void argmax(int64_t* index, const float* inp, int64_t outer, int64_t n, int64_t inner) {
  if (outer * inner == 0) return;
  check_fits_int("argmax_kernel (a block per output)", {outer * inner});
  argmax_kernel<<<static_cast<unsigned>(outer * inner), kThreads, 0, stream()>>>(nullptr, index,
                                                                                 inp, n, inner);
  BRIDLE_CUDA_CHECK_LAUNCH("argmax_kernel");
}

void max_forward(float* out, int64_t* index, const float* inp, int64_t outer, int64_t n,
                 int64_t inner) {
  if (outer * inner == 0) return;
  check_fits_int("argmax_kernel (a block per output)", {outer * inner});
  argmax_kernel<<<static_cast<unsigned>(outer * inner), kThreads, 0, stream()>>>(out, index, inp, n,
                                                                                 inner);
  BRIDLE_CUDA_CHECK_LAUNCH("argmax_kernel");
}

void max_backward(float* dinp, const int64_t* index, const float* dout, int64_t outer, int64_t n,
                  int64_t inner) {
  if (outer * inner == 0) return;
  max_backward_kernel<<<blocks_for(outer * inner, kThreads), kThreads, 0, stream()>>>(
      dinp, index, dout, outer, n, inner);
  BRIDLE_CUDA_CHECK_LAUNCH("max_backward_kernel");
}

}  // namespace bridle::cuda
