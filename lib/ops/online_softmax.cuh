// The pieces of an online softmax pass shared by softmax.cu and
// cross_entropy.cu: the running (max, sum) of a row and how two combine, and the
// row layouts (a warp per short row, a block per long one).
//
// Online softmax (Milakov & Gimelshein 2018): each thread keeps a running max m
// and a sum s of exp((x - m) / T) over its share of a row, rescaling s when m
// grows, so max and sum come out of one read of the row. The threads' pairs then
// combine: (m1, s1) + (m2, s2) = (m, s1 e^((m1-m)/T) + s2 e^((m2-m)/T)), m = max(m1, m2).
#pragma once

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"

namespace bridle::cuda {

constexpr int64_t kWarpRowMax = 1024;
constexpr int kRowsPerWarpBlock = 4;  // warps (= rows) per block of the warp kernels

// The running (max, sum) of an online softmax pass.
struct MaxSum {
  float max;
  float sum;  // sum of exp((x - max) * inv_temp)
  __device__ static MaxSum shuffle_xor(MaxSum x, int offset) {
    return {__shfl_xor_sync(kFullMask, x.max, offset), __shfl_xor_sync(kFullMask, x.sum, offset)};
  }
};

__device__ __forceinline__ MaxSum combine(MaxSum a, MaxSum b, float inv_temp) {
  // An empty side (max -inf, nothing seen or only -inf) adds nothing; testing it
  // first also avoids exp(-inf - -inf) = NaN.
  if (a.max == -INFINITY) return b;
  if (b.max == -INFINITY) return a;
  const float m = fmaxf(a.max, b.max);
  return {m, a.sum * expf((a.max - m) * inv_temp) + b.sum * expf((b.max - m) * inv_temp)};
}

// Adds one element: one exp, whichever branch.
__device__ __forceinline__ void add_element(MaxSum& acc, float x, float inv_temp) {
  if (x > acc.max) {
    acc.sum = acc.sum * expf((acc.max - x) * inv_temp) + 1.0f;
    acc.max = x;
  } else if (x != -INFINITY) {
    acc.sum += expf((x - acc.max) * inv_temp);
  }
}

// The row, the thread's place in it and the threads sharing it, for a warp per
// row (kBlock false) or a block per row (kBlock true).
template <bool kBlock>
struct RowSlot {
  int64_t row;
  int tid, threads;
  __device__ RowSlot() {
    if constexpr (kBlock) {
      row = blockIdx.x, tid = threadIdx.x, threads = blockDim.x;
    } else {
      row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
      tid = threadIdx.x % kWarpSize, threads = kWarpSize;
    }
  }
};

template <bool kBlock, typename T, typename Combine>
__device__ __forceinline__ T reduce_row(T value, Combine combine, T identity) {
  if constexpr (kBlock) return block_reduce(value, combine, identity);
  return warp_reduce(value, combine);
}

template <bool kBlock>
__device__ __forceinline__ float row_sum(float value) {
  if constexpr (kBlock) return block_sum(value);
  return warp_sum(value);
}

template <bool kBlock>
__device__ __forceinline__ bool row_any(bool flag) {
  if constexpr (kBlock) return __syncthreads_or(flag);
  return __any_sync(kFullMask, flag);
}

// Launches kernel<kBlock, kWidth> for contiguous rows, picking the shape:
// a warp per row for short rows, a block per row for long ones, float4 when aligned.
template <template <bool, int> class Launch, typename... Args>
void launch_rows(int64_t rows, int64_t n, bool vectorize, Args... args) {
  cudaStream_t s = stream();
  if (n <= kWarpRowMax) {
    const auto blocks = static_cast<unsigned>((rows + kRowsPerWarpBlock - 1) / kRowsPerWarpBlock);
    const int threads = kRowsPerWarpBlock * kWarpSize;
    if (vectorize)
      Launch<false, 4>::run(blocks, threads, s, args...);
    else
      Launch<false, 1>::run(blocks, threads, s, args...);
  } else {
    // Few long rows: wider blocks, so the GPU has enough threads in flight.
    const int threads = rows >= 1024 ? 512 : 1024;
    const auto blocks = static_cast<unsigned>(rows);
    if (vectorize)
      Launch<true, 4>::run(blocks, threads, s, args...);
    else
      Launch<true, 1>::run(blocks, threads, s, args...);
  }
}

}  // namespace bridle::cuda
