// 2-D convolution (cross-correlation, as every framework computes it).
//
// Shapes: x [N, C, H, W], weight [O, C/G, KH, KW], bias [O] (optional)
//   -> y [N, O, OH, OW],  OH = (H + 2 PH - DH (KH - 1) - 1) / SH + 1  (same for W),
// with G groups: output channel o sees input channels of its group only.
//   y[n, o, oh, ow] = b[o] + sum_{c, kh, kw} x[n, g C/G + c, oh SH - PH + kh DH, ow SW - PW + kw
//   DW]
//                                           * w[o, c, kh, kw]
// The fast path is oneDNN (primitives built once per shape and cached); the naive
// direct loops in conv.cpp are the reference the tests hold it to. CUDA tensors
// go to cuDNN (conv.cu), in builds that found it.
#pragma once

#include <array>

#include "core/tensor.h"

namespace bridle {

struct Conv2dOptions {
  std::array<int64_t, 2> stride = {1, 1};
  std::array<int64_t, 2> padding = {0, 0};
  std::array<int64_t, 2> dilation = {1, 1};
  int64_t groups = 1;
};

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              const Conv2dOptions& options = {});

// Every size a convolution kernel needs, checked and derived once by the op.
struct ConvGeometry {
  int64_t N, C, H, W;  // input
  int64_t O, KH, KW;   // weight [O, C/G, KH, KW]
  int64_t OH, OW;      // output
  int64_t SH, SW, PH, PW, DH, DW, G;
};

namespace cpu {

// The reference loops. Backward accumulates: dx += ..., dw += ..., db += ...
// (any of dx, dw, db may be null).
void conv2d_forward_naive(float* y, const float* x, const float* w, const float* b,
                          const ConvGeometry& g);
void conv2d_backward_naive(float* dx, float* dw, float* db, const float* x, const float* w,
                           const float* dy, const ConvGeometry& g);

// oneDNN: y = conv(x, w) + b (b may be undefined), returned in the layout oneDNN
// prefers (usually blocked, core/layout.h); x may be in any layout.
Tensor conv2d_forward_onednn(const Tensor& x, const Tensor& w, const Tensor& b,
                             const ConvGeometry& g);
// Returns a new dx (in oneDNN's layout) for the output gradient dy (any layout).
Tensor conv2d_backward_data_onednn(const Tensor& dy, const Tensor& w, const ConvGeometry& g);
// Accumulates into dw and db (either may be undefined).
void conv2d_backward_weights_onednn(const Tensor& dw, const Tensor& db, const Tensor& x,
                                    const Tensor& dy, const ConvGeometry& g);

}  // namespace cpu
}  // namespace bridle
