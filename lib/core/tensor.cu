// The CUDA side of Tensor (tensor.cpp): fill_ on a GPU tensor, and add_int64.
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"

namespace bridle::cuda {
namespace {

template <typename T>
__global__ void fill_kernel(T* data, int64_t n, T value) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) data[i] = value;
}

template <typename T>
void launch_fill(void* data, int64_t n, double value) {
  constexpr int kThreads = 256;
  fill_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(static_cast<T*>(data), n,
                                                                     static_cast<T>(value));
  BRIDLE_CUDA_CHECK_LAUNCH("fill_kernel");
}

__global__ void add_int64_kernel(int64_t* data, int64_t n, int64_t value) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) data[i] += value;
}

}  // namespace

void add_int64(int64_t* data, int64_t n, int64_t value) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  add_int64_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(data, n, value);
  BRIDLE_CUDA_CHECK_LAUNCH("add_int64_kernel");
}

void fill(void* data, DType dtype, int64_t n, double value) {
  if (n == 0) return;
  // All-zero bytes (not -0.0, whose sign bit is set): the copy engine does it.
  if (value == 0.0 && !std::signbit(value)) {
    BRIDLE_CUDA_CHECK(
        cudaMemsetAsync(data, 0, static_cast<size_t>(n) * dtype_size(dtype), stream()));
    return;
  }
  switch (dtype) {
    case DType::kFloat32:
      launch_fill<float>(data, n, value);
      break;
    case DType::kInt32:
      launch_fill<int32_t>(data, n, value);
      break;
    case DType::kInt64:
      launch_fill<int64_t>(data, n, value);
      break;
  }
}

}  // namespace bridle::cuda
