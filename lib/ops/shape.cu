// transpose and cat on a GPU: the CUDA kernels (the ops, the CPU kernels and the
// backward are in shape.cpp).
//
// Both are copies, so they move elements as 4- or 8-byte words whatever the
// dtype. A thread per output element, in output order: the writes are
// coalesced, and transpose's reads are strided (a tiled transpose through
// shared memory would coalesce both; these copies are not yet where time goes).
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

constexpr int kThreads = 256;

// Output [outer, b, mid, a, inner] from input [outer, a, mid, b, inner].
template <typename T>
__global__ void transpose_kernel(T* out, const T* inp, int64_t outer, int64_t a, int64_t mid,
                                 int64_t b, int64_t inner) {
  BRIDLE_GRID_STRIDE_LOOP(t, outer * a * mid * b * inner) {
    int64_t r = t;
    const int64_t k = r % inner;
    r /= inner;
    const int64_t i = r % a;
    r /= a;
    const int64_t m = r % mid;
    r /= mid;
    const int64_t j = r % b;
    const int64_t o = r / b;
    out[t] = inp[(((o * a + i) * mid + m) * b + j) * inner + k];
  }
}

template <typename T>
__global__ void copy_block_kernel(T* dst, int64_t dst_ld, const T* src, int64_t src_ld,
                                  int64_t rows, int64_t cols) {
  BRIDLE_GRID_STRIDE_LOOP(t, rows * cols) {
    const int64_t r = t / cols, c = t % cols;
    dst[r * dst_ld + c] = src[r * src_ld + c];
  }
}

__global__ void add_block_kernel(float* dst, int64_t dst_ld, const float* src, int64_t src_ld,
                                 int64_t rows, int64_t cols, bool accumulate) {
  BRIDLE_GRID_STRIDE_LOOP(t, rows * cols) {
    const int64_t r = t / cols, c = t % cols;
    float* d = dst + r * dst_ld + c;
    *d = (accumulate ? *d : 0.0f) + src[r * src_ld + c];
  }
}

}  // namespace

void transpose_copy(void* out, const void* inp, int64_t elem_size, int64_t outer, int64_t a,
                    int64_t mid, int64_t b, int64_t inner) {
  const int64_t n = outer * a * mid * b * inner;
  if (n == 0) return;
  if (elem_size == 8)
    transpose_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(
        static_cast<uint64_t*>(out), static_cast<const uint64_t*>(inp), outer, a, mid, b, inner);
  else
    transpose_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(
        static_cast<uint32_t*>(out), static_cast<const uint32_t*>(inp), outer, a, mid, b, inner);
  BRIDLE_CUDA_CHECK_LAUNCH("transpose_kernel");
}

void copy_block(void* dst, int64_t dst_ld, const void* src, int64_t src_ld, int64_t elem_size,
                int64_t rows, int64_t cols) {
  if (rows * cols == 0) return;
  if (elem_size == 8)
    copy_block_kernel<<<blocks_for(rows * cols, kThreads), kThreads, 0, stream()>>>(
        static_cast<uint64_t*>(dst), dst_ld, static_cast<const uint64_t*>(src), src_ld, rows, cols);
  else
    copy_block_kernel<<<blocks_for(rows * cols, kThreads), kThreads, 0, stream()>>>(
        static_cast<uint32_t*>(dst), dst_ld, static_cast<const uint32_t*>(src), src_ld, rows, cols);
  BRIDLE_CUDA_CHECK_LAUNCH("copy_block_kernel");
}

void add_block(float* dst, int64_t dst_ld, const float* src, int64_t src_ld, int64_t rows,
               int64_t cols, bool accumulate) {
  if (rows * cols == 0) return;
  add_block_kernel<<<blocks_for(rows * cols, kThreads), kThreads, 0, stream()>>>(
      dst, dst_ld, src, src_ld, rows, cols, accumulate);
  BRIDLE_CUDA_CHECK_LAUNCH("add_block_kernel");
}

}  // namespace bridle::cuda
