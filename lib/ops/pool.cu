// max_pool2d and avg_pool2d on a GPU through cuDNN (the ops and the CPU kernels
// are in pool.cpp).
//
// cuDNN's pooling matches pool.h's conventions: floor-mode output size, max
// pooling where padding never wins, and average pooling that divides by KH KW
// (count_include_pad) or by the in-bounds count. It has no dilation; the op
// keeps dilated max pooling on the CPU's side of the check. Backward reads the
// forward's input and output (for max: which element was the maximum).
#include "core/cuda/cudnn_check.h"
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

}  // namespace

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
