// The pieces of an online softmax pass shared by softmax.cu and
// cross_entropy.cu: the running (max, sum) of a row and how two combine, and the
// row layouts (a warp per short row, a block per long one, several blocks per
// long row when there are few rows: row_split.h).
//
// Online softmax (Milakov & Gimelshein 2018): each thread keeps a running max m
// and a sum s of exp((x - m) / T) over its share of a row, rescaling s when m
// grows, so max and sum come out of one read of the row. The threads' pairs then
// combine: (m1, s1) + (m2, s2) = (m, s1 e^((m1-m)/T) + s2 e^((m2-m)/T)), m = max(m1, m2).
#pragma once

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/row_split.h"

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
  // An empty side (nothing seen, or only -inf) adds nothing; testing it first
  // also avoids exp(-inf - -inf) = NaN. A side that saw only NaN (and -inf) has
  // max -inf and sum NaN: not empty, so the NaN reaches the row's sum.
  if (a.max == -INFINITY && a.sum == 0.0f) return b;
  if (b.max == -INFINITY && b.sum == 0.0f) return a;
  const float m = fmaxf(a.max, b.max);
  // Rounded step by step (no fused multiply-add), so that combine(a, b) and
  // combine(b, a) give the same bits and every lane of a butterfly the same result.
  return {m, __fadd_rn(__fmul_rn(a.sum, expf((a.max - m) * inv_temp)),
                       __fmul_rn(b.sum, expf((b.max - m) * inv_temp)))};
}

// log sum exp of a row from its (max, sum); NaN for a row without a finite
// maximum (a +inf, or all -inf), as the CPU's row_logsumexp.
__device__ __forceinline__ float row_lse(MaxSum row) {
  return isfinite(row.max) ? row.max + logf(row.sum) : NAN;
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

// Adds this thread's share of x to acc: float groups tid, tid + threads, ... of
// the `groups` groups of kWidth floats. Flags a NaN (whose exp makes the sum NaN
// without telling which row had it).
template <int kWidth>
__device__ __forceinline__ void add_elements(MaxSum& acc, bool& has_nan, const float* x,
                                             int64_t groups, int tid, int threads, float inv_temp) {
  for (int64_t k = tid; k < groups; k += threads) {
    const Floats<kWidth> v = Floats<kWidth>::load(x + k * kWidth);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) {
      add_element(acc, v.v[i], inv_temp);
      has_nan |= isnan(v.v[i]);
    }
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

// A chunk of a split row: block (x, y) of a split launch takes chunk x of row y,
// elements [begin, end) of the row, and its threads take every blockDim.x-th
// group of kWidth floats in it.
struct ChunkSlot {
  int64_t row, chunk, chunks, begin, end;
  __device__ ChunkSlot(int64_t n, int64_t chunk_len)
      : row(blockIdx.y), chunk(blockIdx.x), chunks(gridDim.x) {
    begin = chunk * chunk_len;
    end = min(n, begin + chunk_len);
  }
  // Where this chunk's partial result goes: [rows, chunks], row-major.
  __device__ int64_t partial() const { return row * chunks + chunk; }
  // Groups of kWidth floats in the chunk (chunk_len is a multiple of 4).
  template <int kWidth>
  __device__ int64_t groups() const {
    return (end - begin) / kWidth;
  }
};

// The (max, sum) of a chunk of the rows x (row length n), reduced over the
// block, every thread getting it; has_nan (the same on every thread) says
// whether the chunk holds a NaN.
template <int kWidth>
__device__ MaxSum chunk_max_sum(const float* x, int64_t n, const ChunkSlot& chunk, float inv_temp,
                                bool& has_nan) {
  MaxSum acc{-INFINITY, 0.0f};
  has_nan = false;
  add_elements<kWidth>(acc, has_nan, x + chunk.row * n + chunk.begin, chunk.groups<kWidth>(),
                       threadIdx.x, blockDim.x, inv_temp);
  acc = block_reduce(
      acc, [inv_temp](MaxSum a, MaxSum b) { return combine(a, b, inv_temp); },
      MaxSum{-INFINITY, 0.0f});
  has_nan = __syncthreads_or(has_nan);
  return acc;
}

// A row's result from its chunks' partials, by a whole warp (call it from all
// 32 lanes): lane l combines chunks l, l + 32, ... in order, then the lanes
// combine in a butterfly. With a combine that gives the same bits either way
// round, every warp of every block of the row ends with the same bits.
template <typename T, typename Combine>
__device__ __forceinline__ T warp_combine_chunks(const T* partials, int64_t chunks, Combine combine,
                                                 T identity) {
  T acc = identity;
  for (int64_t c = threadIdx.x % kWarpSize; c < chunks; c += kWarpSize)
    acc = combine(acc, partials[c]);
  return warp_reduce(acc, combine);
}

// The grid of a split launch: chunks x rows. rows < kSplitBlocksPerMultiprocessor
// * multiprocessors whenever split_long_rows splits, far below gridDim.y's 65535.
inline dim3 split_grid(const RowSplit& split, int64_t rows) {
  return dim3(static_cast<unsigned>(split.chunks), static_cast<unsigned>(rows));
}

static_assert(2 * kMinChunkElements > kWarpRowMax,
              "a split row must be one the one-row kernels give a block, not a warp");

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

// As launch_rows, but rows too few to fill the GPU and long enough to split
// (row_split.h) go to Split<kWidth>::run(split, args...) instead.
template <template <int> class Split, template <bool, int> class Launch, typename... Args>
void launch_rows_or_split(int64_t rows, int64_t n, bool vectorize, Args... args) {
  const RowSplit split = split_long_rows(rows, n, multiprocessor_count());
  if (split.chunks == 1) {
    launch_rows<Launch>(rows, n, vectorize, args...);
  } else if (vectorize) {
    Split<4>::run(split, args...);
  } else {
    Split<1>::run(split, args...);
  }
}

}  // namespace bridle::cuda
