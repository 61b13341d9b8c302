// 2-D pooling: max, average and adaptive average, with PyTorch's conventions.
//
// Shapes: x [N, C, H, W] -> y [N, C, OH, OW]. For max and average pooling with
// kernel K, stride S, padding P and dilation D (floor mode, as PyTorch's default):
//   OH = (H + 2 PH - DH (KH - 1) - 1) / SH + 1                (same for W)
//   window (oh, ow) reads rows ih = oh SH - PH + kh DH, kh in [0, KH)
//   max: y = the largest x in the window (padding never wins)
//   avg: y = sum of the window / KH KW         (count_include_pad, PyTorch's default)
//        y = sum of the window / #in-bounds    (count_include_pad = false)
// Padding may be at most half the kernel (PyTorch's rule); average pooling has no
// dilation. A stride of {0, 0} (the default) means stride = kernel.
// Adaptive average pooling to [OH, OW] averages, for output row oh, the input rows
//   [floor(oh H / OH), ceil((oh + 1) H / OH))   (same for columns),
// so output size {1, 1} is global average pooling.
//
// Max-pool ties: the gradient goes to one element of the window, the first
// maximum in row-major order, as PyTorch's CPU kernel does; a NaN in the window
// wins (and propagates) in the naive kernel, as in PyTorch. The oneDNN path makes
// the same first-maximum choice for finite ties (tested); NaN handling there is
// oneDNN's and not guaranteed.
//
// Kernels: the naive loops in pool.cpp are the reference; the op runs oneDNN's
// pooling primitives (cached per shape), and the tests hold one to the other.
// CUDA tensors go to pool.cu, in builds that found cuDNN: cuDNN runs max pooling
// without dilation, average pooling, and adaptive pooling with even windows;
// dilated max pooling (with the naive kernel's rules: padding never wins, NaN
// wins, ties go to the first maximum) and adaptive pooling with uneven windows
// run kernels of ours there.
#pragma once

#include <array>
#include <cstddef>

#include "core/tensor.h"

namespace bridle {

using Size2 = std::array<int64_t, 2>;  // {height, width}

Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride = {0, 0}, Size2 padding = {0, 0},
                  Size2 dilation = {1, 1});
Tensor avg_pool2d(const Tensor& x, Size2 kernel, Size2 stride = {0, 0}, Size2 padding = {0, 0},
                  bool count_include_pad = true);
Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size);

// Square forms: max_pool2d(x, 3, 2, 1) is max_pool2d(x, {3, 3}, {2, 2}, {1, 1}).
inline Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride = 0, int64_t padding = 0,
                         int64_t dilation = 1) {
  return max_pool2d(x, {kernel, kernel}, {stride, stride}, {padding, padding},
                    {dilation, dilation});
}
inline Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride = 0, int64_t padding = 0,
                         bool count_include_pad = true) {
  return avg_pool2d(x, {kernel, kernel}, {stride, stride}, {padding, padding}, count_include_pad);
}
inline Tensor adaptive_avg_pool2d(const Tensor& x, int64_t output_size) {
  return adaptive_avg_pool2d(x, {output_size, output_size});
}

// Every size a pooling kernel needs, checked and derived once by the op.
struct PoolGeometry {
  int64_t N, C, H, W;  // input
  int64_t OH, OW;      // output
  int64_t KH, KW, SH, SW, PH, PW, DH, DW;
};

namespace cpu {

// --- Naive reference loops. Backward accumulates (dx += ...). ------------------

// argmax[n, c, oh, ow] = ih * W + iw of the chosen maximum (PyTorch's indices),
// or -1 for a window with no element inside the input.
void max_pool2d_forward_naive(float* y, int64_t* argmax, const float* x, const PoolGeometry& g);
void max_pool2d_backward_naive(float* dx, const int64_t* argmax, const float* dy,
                               const PoolGeometry& g);
void avg_pool2d_forward_naive(float* y, const float* x, const PoolGeometry& g,
                              bool count_include_pad);
void avg_pool2d_backward_naive(float* dx, const float* dy, const PoolGeometry& g,
                               bool count_include_pad);

// --- oneDNN. x may be plain or in a blocked layout; y comes back in the layout
// oneDNN picks (following x's). Max pooling records where each maximum came from
// in an opaque workspace tensor, which its backward reads. The backwards return
// a new dx and take x's layout at forward time (null: plain), which picks the
// matching primitive.
Tensor max_pool2d_forward_onednn(const Tensor& x, Tensor& workspace, const PoolGeometry& g);
Tensor max_pool2d_backward_onednn(const Tensor& workspace, const Tensor& dy, const PoolGeometry& g,
                                  const std::shared_ptr<const OpaqueLayout>& x_layout);
Tensor avg_pool2d_forward_onednn(const Tensor& x, const PoolGeometry& g, bool count_include_pad);
Tensor avg_pool2d_backward_onednn(const Tensor& dy, const PoolGeometry& g, bool count_include_pad,
                                  const std::shared_ptr<const OpaqueLayout>& x_layout);

// --- Adaptive average pooling over `planes` = N C planes (one kernel: threaded
// over planes, plain loops inside).
void adaptive_avg_pool2d_forward(float* y, const float* x, int64_t planes, int64_t H, int64_t W,
                                 int64_t OH, int64_t OW);
void adaptive_avg_pool2d_backward(float* dx, const float* dy, int64_t planes, int64_t H, int64_t W,
                                  int64_t OH, int64_t OW);

}  // namespace cpu
}  // namespace bridle
