// max_pool2d and avg_pool2d on a GPU through cuDNN (the ops and the CPU kernels
// are in pool.cpp).
//
// cuDNN's pooling matches pool.h's conventions: floor-mode output size, max
// pooling where padding never wins, and average pooling that divides by KH KW
// (count_include_pad) or by the in-bounds count. Backward reads the forward's
// input and output (for max: which element was the maximum).
//
// cuDNN has no dilation and no adaptive pooling, so dilated max pooling and
// adaptive_avg_pool2d's uneven windows are kernels of ours: a thread per output
// element forward, and a thread per input element backward, which sums what the
// windows holding it send it (so no two threads write the same element: no
// atomics, a fixed order). Dilated max pooling saves each window's argmax in the
// forward, and its backward sends a window's dy only to that element.
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "core/cuda/cudnn_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

cudnnPoolingMode_t pooling_mode(PoolKind kind) {
  switch (kind) {
    case PoolKind::kMax:
      // The deterministic variant: one gradient per window, never split.
      return CUDNN_POOLING_MAX_DETERMINISTIC;
    case PoolKind::kAvgIncludePad:
      return CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING;
    case PoolKind::kAvgExcludePad:
      return CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
  }
  return CUDNN_POOLING_MAX_DETERMINISTIC;
}

// The pooling, x and y descriptors of one call, destroyed with its scope.
struct PoolDescriptors {
  cudnnPoolingDescriptor_t pool = nullptr;
  TensorDescriptor x, y;

  PoolDescriptors(PoolKind kind, const PoolSizes& s)
      : x(s.N, s.C, s.H, s.W), y(s.N, s.C, s.OH, s.OW) {
    BRIDLE_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&pool));
    // NaN propagates through max pooling, as in PyTorch and the naive kernel.
    BRIDLE_CUDNN_CHECK(cudnnSetPooling2dDescriptor(pool, pooling_mode(kind), CUDNN_PROPAGATE_NAN,
                                                   static_cast<int>(s.KH), static_cast<int>(s.KW),
                                                   static_cast<int>(s.PH), static_cast<int>(s.PW),
                                                   static_cast<int>(s.SH), static_cast<int>(s.SW)));
  }
  ~PoolDescriptors() { cudnnDestroyPoolingDescriptor(pool); }
  PoolDescriptors(const PoolDescriptors&) = delete;
  PoolDescriptors& operator=(const PoolDescriptors&) = delete;
};

constexpr int kThreads = 256;

// PyTorch's adaptive windows, as pool.cpp: output o of `out` covers input
// [start, end); input i lies in the windows of outputs [first_window, last_window).
__device__ int64_t window_start(int64_t o, int64_t out, int64_t in) { return (o * in) / out; }
__device__ int64_t window_end(int64_t o, int64_t out, int64_t in) {
  return ((o + 1) * in + out - 1) / out;
}
__device__ int64_t first_window(int64_t i, int64_t in, int64_t out) { return (i * out) / in; }
__device__ int64_t last_window(int64_t i, int64_t in, int64_t out) {
  return ((i + 1) * out + in - 1) / in;
}

__global__ void adaptive_avg_pool2d_forward_kernel(float* y, const float* x, int64_t planes,
                                                   int64_t H, int64_t W, int64_t OH, int64_t OW) {
  BRIDLE_GRID_STRIDE_LOOP(t, planes * OH * OW) {
    const int64_t ow = t % OW, oh = t / OW % OH, p = t / (OW * OH);
    const int64_t h0 = window_start(oh, OH, H), h1 = window_end(oh, OH, H);
    const int64_t w0 = window_start(ow, OW, W), w1 = window_end(ow, OW, W);
    const float* plane = x + p * H * W;
    float sum = 0.0f;
    for (int64_t ih = h0; ih < h1; ++ih)
      for (int64_t iw = w0; iw < w1; ++iw) sum += plane[ih * W + iw];
    y[t] = sum / static_cast<float>((h1 - h0) * (w1 - w0));
  }
}

// dx[i] += sum over the windows w holding i of dy[w] / |w|.
__global__ void adaptive_avg_pool2d_backward_kernel(float* dx, const float* dy, int64_t planes,
                                                    int64_t H, int64_t W, int64_t OH, int64_t OW) {
  BRIDLE_GRID_STRIDE_LOOP(t, planes * H * W) {
    const int64_t iw = t % W, ih = t / W % H, p = t / (W * H);
    const float* g = dy + p * OH * OW;
    float sum = 0.0f;
    for (int64_t oh = first_window(ih, H, OH); oh < last_window(ih, H, OH); ++oh) {
      const int64_t h0 = window_start(oh, OH, H), h1 = window_end(oh, OH, H);
      if (ih < h0 || ih >= h1) continue;
      for (int64_t ow = first_window(iw, W, OW); ow < last_window(iw, W, OW); ++ow) {
        const int64_t w0 = window_start(ow, OW, W), w1 = window_end(ow, OW, W);
        if (iw < w0 || iw >= w1) continue;
        sum += g[oh * OW + ow] / static_cast<float>((h1 - h0) * (w1 - w0));
      }
    }
    dx[t] += sum;
  }
}

// y[o] = the maximum over window o's in-bounds taps, as cpu::max_pool2d_forward_naive:
// the first in-bounds tap starts the search (so a window of -inf still has an
// argmax), a larger value or a NaN takes over (NaN propagates, ties keep the
// first), and argmax[o] = ih * W + iw of the winner, -1 when no tap is in bounds.
__global__ void max_pool2d_dilated_forward_kernel(float* y, int64_t* argmax, const float* x,
                                                  PoolSizes s) {
  BRIDLE_GRID_STRIDE_LOOP(t, s.N * s.C * s.OH * s.OW) {
    const int64_t ow = t % s.OW, oh = t / s.OW % s.OH, p = t / (s.OW * s.OH);
    const float* plane = x + p * s.H * s.W;
    float best = -INFINITY;
    int64_t best_index = -1;
    for (int64_t kh = 0; kh < s.KH; ++kh) {
      const int64_t ih = oh * s.SH - s.PH + kh * s.DH;
      if (ih < 0 || ih >= s.H) continue;
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        const int64_t iw = ow * s.SW - s.PW + kw * s.DW;
        if (iw < 0 || iw >= s.W) continue;
        const float v = plane[ih * s.W + iw];
        if (best_index < 0 || v > best || isnan(v)) {
          best = v;
          best_index = ih * s.W + iw;
        }
      }
    }
    y[t] = best;
    if (argmax) argmax[t] = best_index;
  }
}

// dx[i] (+)= sum of dy[o] over the windows o whose argmax is i. Row ih is tap kh
// of window oh when oh SH = ih + PH - kh DH (columns alike), so a thread visits
// at most KH KW windows. kh and kw run downwards so the windows come in
// row-major order: the naive backward's order of the adds.
__global__ void max_pool2d_dilated_backward_kernel(float* dx, const int64_t* argmax,
                                                   const float* dy, PoolSizes s, bool accumulate) {
  BRIDLE_GRID_STRIDE_LOOP(t, s.N * s.C * s.H * s.W) {
    const int64_t iw = t % s.W, ih = t / s.W % s.H, p = t / (s.W * s.H);
    const int64_t i = ih * s.W + iw;
    const int64_t* chosen = argmax + p * s.OH * s.OW;
    const float* g = dy + p * s.OH * s.OW;
    float sum = 0.0f;
    for (int64_t kh = s.KH - 1; kh >= 0; --kh) {
      const int64_t row = ih + s.PH - kh * s.DH;  // oh SH
      if (row < 0 || row % s.SH != 0 || row / s.SH >= s.OH) continue;
      const int64_t oh = row / s.SH;
      for (int64_t kw = s.KW - 1; kw >= 0; --kw) {
        const int64_t col = iw + s.PW - kw * s.DW;  // ow SW
        if (col < 0 || col % s.SW != 0 || col / s.SW >= s.OW) continue;
        const int64_t o = oh * s.OW + col / s.SW;
        if (chosen[o] == i) sum += g[o];
      }
    }
    dx[t] = accumulate ? dx[t] + sum : sum;
  }
}

}  // namespace

void max_pool2d_dilated_forward(float* y, int64_t* argmax, const float* x, const PoolSizes& s) {
  const int64_t n = s.N * s.C * s.OH * s.OW;
  if (n == 0) return;
  max_pool2d_dilated_forward_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(y, argmax,
                                                                                        x, s);
  BRIDLE_CUDA_CHECK_LAUNCH("max_pool2d_dilated_forward_kernel");
}

void max_pool2d_dilated_backward(float* dx, const int64_t* argmax, const float* dy,
                                 const PoolSizes& s, bool accumulate) {
  const int64_t n = s.N * s.C * s.H * s.W;
  if (n == 0) return;
  max_pool2d_dilated_backward_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(
      dx, argmax, dy, s, accumulate);
  BRIDLE_CUDA_CHECK_LAUNCH("max_pool2d_dilated_backward_kernel");
}

void adaptive_avg_pool2d_forward(float* y, const float* x, int64_t planes, int64_t H, int64_t W,
                                 int64_t OH, int64_t OW) {
  if (planes * OH * OW == 0) return;
  adaptive_avg_pool2d_forward_kernel<<<blocks_for(planes * OH * OW, kThreads), kThreads, 0,
                                       stream()>>>(y, x, planes, H, W, OH, OW);
  BRIDLE_CUDA_CHECK_LAUNCH("adaptive_avg_pool2d_forward_kernel");
}

void adaptive_avg_pool2d_backward(float* dx, const float* dy, int64_t planes, int64_t H, int64_t W,
                                  int64_t OH, int64_t OW) {
  if (planes * H * W == 0) return;
  adaptive_avg_pool2d_backward_kernel<<<blocks_for(planes * H * W, kThreads), kThreads, 0,
                                        stream()>>>(dx, dy, planes, H, W, OH, OW);
  BRIDLE_CUDA_CHECK_LAUNCH("adaptive_avg_pool2d_backward_kernel");
}

void pool2d_forward(PoolKind kind, float* y, const float* x, const PoolSizes& s) {
  PoolDescriptors d(kind, s);
  const float one = 1.0f, zero = 0.0f;
  BRIDLE_CUDNN_CHECK(cudnnPoolingForward(cudnn_handle(), d.pool, &one, d.x, x, &zero, d.y, y));
}

void pool2d_backward(PoolKind kind, float* dx, const float* y, const float* dy, const float* x,
                     const PoolSizes& s, bool accumulate) {
  PoolDescriptors d(kind, s);
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  BRIDLE_CUDNN_CHECK(
      cudnnPoolingBackward(cudnn_handle(), d.pool, &one, d.y, y, d.y, dy, d.x, x, &beta, d.x, dx));
}

}  // namespace bridle::cuda
