// What kernels and their launchers need: the checking macros every CUDA and
// cuBLAS call goes through, the current device's stream and cuBLAS handle,
// launch-size helpers and scratch memory. Includes the CUDA headers: only for
// .cu files and the CUDA-only .cpp files in core/cuda (the rest include
// core/cuda/cuda.h).
//
// A failed call throws bridle::Error naming the call as written, where it is
// and CUDA's own name and text for the error, e.g.
//   CUDA call cudaMalloc(&ptr, size) failed at lib/core/cuda/allocator.cpp:57:
//   cudaErrorMemoryAllocation (out of memory)
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "core/cuda/cuda.h"

namespace bridle::cuda {

[[noreturn]] void throw_cuda_error(const char* call, const char* file, int line, cudaError_t error);
[[noreturn]] void throw_cublas_error(const char* call, const char* file, int line,
                                     cublasStatus_t status);

// The current device's stream (created on first use) and its cuBLAS handle,
// which is bound to that stream.
cudaStream_t stream();
cublasHandle_t cublas_handle();

// The current device's number of streaming multiprocessors (asked once per device).
int multiprocessor_count();

// Throws bridle::Error naming `what` unless every one of sizes fits in an int:
// cuBLAS takes its sizes as int, and a grid holds at most 2^31 - 1 blocks. A
// bigger value cast down would fail, or wrap and silently cover part of the work.
void check_fits_int(const char* what, std::initializer_list<int64_t> sizes);

// Blocks of `threads` to cover n items, for grid-stride loops: capped, since a
// grid-stride loop covers any n with enough blocks to fill the GPU.
inline unsigned blocks_for(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, int64_t{1} << 16));
}

}  // namespace bridle::cuda

// BRIDLE_CUDA_CHECK(cudaMemcpyAsync(...)): throws bridle::Error if the call fails.
#define BRIDLE_CUDA_CHECK(call)                                                    \
  do {                                                                             \
    const cudaError_t bridle_status_ = (call);                                     \
    if (bridle_status_ != cudaSuccess)                                             \
      ::bridle::cuda::throw_cuda_error(#call, __FILE__, __LINE__, bridle_status_); \
  } while (0)

// BRIDLE_CUBLAS_CHECK(cublasSgemm(...)): the same for cuBLAS's status codes.
#define BRIDLE_CUBLAS_CHECK(call)                                                    \
  do {                                                                               \
    const cublasStatus_t bridle_status_ = (call);                                    \
    if (bridle_status_ != CUBLAS_STATUS_SUCCESS)                                     \
      ::bridle::cuda::throw_cublas_error(#call, __FILE__, __LINE__, bridle_status_); \
  } while (0)

// After a kernel launch: a bad launch (too many threads, no kernel image for this
// GPU) shows up in cudaGetLastError, named here by the kernel. Errors the kernel
// hits while running surface at the next synchronizing call.
#define BRIDLE_CUDA_CHECK_LAUNCH(kernel_name)                                        \
  do {                                                                               \
    const cudaError_t bridle_status_ = cudaGetLastError();                           \
    if (bridle_status_ != cudaSuccess)                                               \
      ::bridle::cuda::throw_cuda_error("launch of " kernel_name, __FILE__, __LINE__, \
                                       bridle_status_);                              \
  } while (0)

namespace bridle::cuda {

// Scratch memory for one library call or kernel launch, from the caching
// allocator. Released when the call has been queued: the next user of the block
// runs after it in stream order (cuda.h), so no synchronization is needed.
class Workspace {
 public:
  explicit Workspace(size_t nbytes) : nbytes_(nbytes) {
    BRIDLE_CUDA_CHECK(cudaGetDevice(&device_));
    if (nbytes_ > 0) data_ = allocate(nbytes_, device_);
  }
  ~Workspace() {
    if (data_) release(data_, nbytes_, device_);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* data() const { return data_; }
  size_t size() const { return nbytes_; }

 private:
  size_t nbytes_ = 0;
  int device_ = 0;
  void* data_ = nullptr;
};

}  // namespace bridle::cuda
