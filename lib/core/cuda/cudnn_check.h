// cuDNN for the launchers of conv.cu, pool.cu and batch_norm.cu: the current
// device's cuDNN handle, the macro every cuDNN call goes through, and the scoped
// tensor descriptor and workspace they share.
//
// Beside cuda_check.h rather than inside it: cuDNN is optional (built only when
// cmake/BridleCudnn.cmake finds it, which defines BRIDLE_WITH_CUDNN), and every
// .cu file includes cuda_check.h, so cudnn.h must stay out of it.
//
// A failed call throws bridle::Error naming the call as written, where it is,
// cuDNN's status (cudnnGetErrorString) and, when cuDNN logged one, its own
// account of what was wrong (cudnnGetLastErrorString), e.g.
//   cuDNN call cudnnConvolutionForward(...) failed at lib/ops/conv.cu:120:
//   CUDNN_STATUS_BAD_PARAM: <cuDNN's message>
#pragma once

#include <cudnn.h>

#include "core/cuda/cuda_check.h"

namespace bridle::cuda {
[[noreturn]] void throw_cudnn_error(const char* call, const char* file, int line,
                                    cudnnStatus_t status);
}  // namespace bridle::cuda

// BRIDLE_CUDNN_CHECK(cudnnPoolingForward(...)): throws bridle::Error if the call fails.
#define BRIDLE_CUDNN_CHECK(call)                                                    \
  do {                                                                              \
    const cudnnStatus_t bridle_status_ = (call);                                    \
    if (bridle_status_ != CUDNN_STATUS_SUCCESS)                                     \
      ::bridle::cuda::throw_cudnn_error(#call, __FILE__, __LINE__, bridle_status_); \
  } while (0)

namespace bridle::cuda {

// The current device's cuDNN handle, created on first use and bound to the
// device's stream (cuda_check.h), so cuDNN's work is ordered with bridle's.
cudnnHandle_t cudnn_handle();

// A 4-D float32 NCHW (contiguous) tensor descriptor, destroyed with its scope.
class TensorDescriptor {
 public:
  TensorDescriptor(int64_t n, int64_t c, int64_t h, int64_t w) {
    BRIDLE_CUDNN_CHECK(cudnnCreateTensorDescriptor(&desc_));
    BRIDLE_CUDNN_CHECK(cudnnSetTensor4dDescriptor(desc_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                                  static_cast<int>(n), static_cast<int>(c),
                                                  static_cast<int>(h), static_cast<int>(w)));
  }
  ~TensorDescriptor() { cudnnDestroyTensorDescriptor(desc_); }
  TensorDescriptor(const TensorDescriptor&) = delete;
  TensorDescriptor& operator=(const TensorDescriptor&) = delete;
  operator cudnnTensorDescriptor_t() const { return desc_; }

 private:
  cudnnTensorDescriptor_t desc_ = nullptr;
};

}  // namespace bridle::cuda
