// Indexing on a GPU: index_select (and embedding, which is index_select of the
// weight's rows) and gather, forward and backward. The ops, their checks and the
// CPU kernels are in indexing.cpp.
//
// The forwards are copies, one thread per output element. The backwards
// scatter-add with atomicAdd, so a repeated index receives the gradient of every
// copy; the order of those adds varies from run to run, so such a sum may differ
// from the CPU's (which adds in index order) in its last bits.
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

constexpr int kThreads = 256;

// Output element e of [outer, K, inner] reads x[o, indices[k], i] of [outer, n, inner].
template <typename T, typename Index>
__global__ void index_select_forward_kernel(T* out, const T* x, const Index* indices, int64_t n,
                                            int64_t K, int64_t inner, int64_t total) {
  BRIDLE_GRID_STRIDE_LOOP(e, total) {
    const int64_t i = e % inner, k = (e / inner) % K, o = e / (inner * K);
    out[e] = x[(o * n + static_cast<int64_t>(indices[k])) * inner + i];
  }
}

template <typename Index>
__global__ void index_select_backward_kernel(float* dx, const float* dout, const Index* indices,
                                             int64_t n, int64_t K, int64_t inner, int64_t total) {
  BRIDLE_GRID_STRIDE_LOOP(e, total) {
    const int64_t i = e % inner, k = (e / inner) % K, o = e / (inner * K);
    atomicAdd(dx + (o * n + static_cast<int64_t>(indices[k])) * inner + i, dout[e]);
  }
}

// Element e of index [B, k] picks column index[e] of row e / k of x [B, C].
template <typename Index>
__global__ void gather_forward_kernel(float* out, const float* x, const Index* index, int64_t C,
                                      int64_t k, int64_t total) {
  BRIDLE_GRID_STRIDE_LOOP(e, total) { out[e] = x[(e / k) * C + static_cast<int64_t>(index[e])]; }
}

template <typename Index>
__global__ void gather_backward_kernel(float* dx, const float* dout, const Index* index, int64_t C,
                                       int64_t k, int64_t total) {
  BRIDLE_GRID_STRIDE_LOOP(e, total) {
    atomicAdd(dx + (e / k) * C + static_cast<int64_t>(index[e]), dout[e]);
  }
}

void zero(float* data, int64_t n) {
  BRIDLE_CUDA_CHECK(cudaMemsetAsync(data, 0, static_cast<size_t>(n) * sizeof(float), stream()));
}

}  // namespace

template <typename T, typename Index>
void index_select_forward(T* out, const T* x, const Index* indices, int64_t outer, int64_t n,
                          int64_t K, int64_t inner) {
  const int64_t total = outer * K * inner;
  if (total == 0) return;
  index_select_forward_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream()>>>(
      out, x, indices, n, K, inner, total);
  BRIDLE_CUDA_CHECK_LAUNCH("index_select_forward_kernel");
}

template <typename Index>
void index_select_backward(float* dx, const float* dout, const Index* indices, int64_t outer,
                           int64_t n, int64_t K, int64_t inner, bool accumulate) {
  if (!accumulate) zero(dx, outer * n * inner);
  const int64_t total = outer * K * inner;
  if (total == 0) return;
  index_select_backward_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream()>>>(
      dx, dout, indices, n, K, inner, total);
  BRIDLE_CUDA_CHECK_LAUNCH("index_select_backward_kernel");
}

template <typename Index>
void gather_forward(float* out, const float* x, const Index* index, int64_t B, int64_t C,
                    int64_t k) {
  const int64_t total = B * k;
  if (total == 0) return;
  gather_forward_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream()>>>(out, x, index, C, k,
                                                                                total);
  BRIDLE_CUDA_CHECK_LAUNCH("gather_forward_kernel");
}

template <typename Index>
void gather_backward(float* dx, const float* dout, const Index* index, int64_t B, int64_t C,
                     int64_t k, bool accumulate) {
  if (!accumulate) zero(dx, B * C);
  const int64_t total = B * k;
  if (total == 0) return;
  gather_backward_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream()>>>(dx, dout, index, C,
                                                                                 k, total);
  BRIDLE_CUDA_CHECK_LAUNCH("gather_backward_kernel");
}

#define BRIDLE_INDEXING_FOR_INDEX(Index)                                                       \
  template void index_select_forward(float*, const float*, const Index*, int64_t, int64_t,     \
                                     int64_t, int64_t);                                        \
  template void index_select_forward(int32_t*, const int32_t*, const Index*, int64_t, int64_t, \
                                     int64_t, int64_t);                                        \
  template void index_select_forward(int64_t*, const int64_t*, const Index*, int64_t, int64_t, \
                                     int64_t, int64_t);                                        \
  template void index_select_backward(float*, const float*, const Index*, int64_t, int64_t,    \
                                      int64_t, int64_t, bool);                                 \
  template void gather_forward(float*, const float*, const Index*, int64_t, int64_t, int64_t); \
  template void gather_backward(float*, const float*, const Index*, int64_t, int64_t, int64_t, \
                                bool);
BRIDLE_INDEXING_FOR_INDEX(int32_t)
BRIDLE_INDEXING_FOR_INDEX(int64_t)
#undef BRIDLE_INDEXING_FOR_INDEX

}  // namespace bridle::cuda
