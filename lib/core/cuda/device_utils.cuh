// Device-side building blocks shared by the .cu kernels: grid-stride loops,
// warp and block reductions, and vector loads.
//
// Reductions combine any value type with any associative `combine`; a block
// reduction returns the result to every thread of the block.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

namespace bridle::cuda {

constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// for (i = this thread's first; i < n; i += every thread of the grid)
#define BRIDLE_GRID_STRIDE_LOOP(i, n)                                                    \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

// Butterfly reduction over the 32 lanes of a warp: every lane ends with the result.
template <typename T, typename Combine>
__device__ __forceinline__ T warp_reduce(T value, Combine combine) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    value = combine(value, T::shuffle_xor(value, offset));
  return value;
}

__device__ __forceinline__ float warp_sum(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}

// for (i = this thread's warp's first item; i < n; i += every warp of the grid):
// a warp per item, for any n (blocks_for caps the grid). i is the same on the
// 32 lanes of a warp, so a warp runs its items' shuffles together.
#define BRIDLE_GRID_WARP_LOOP(i, n)                                                           \
  for (int64_t i = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarpSize; \
       i < (n); i += static_cast<int64_t>(blockDim.x) * gridDim.x / kWarpSize)

// a . b over n floats by the 32 lanes of a warp, each taking every 32nd element;
// every lane ends with the result.
__device__ __forceinline__ float warp_dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t k = threadIdx.x % kWarpSize; k < n; k += kWarpSize) sum += a[k] * b[k];
  return warp_sum(sum);
}

// Reduction over a whole block (blockDim.x a multiple of 32, at most 1024):
// each warp reduces its lanes, warp 0 reduces the warps' results, and the result
// goes back to every thread through shared memory. `identity` fills the lanes of
// warp 0 that have no warp behind them.
template <typename T, typename Combine>
__device__ T block_reduce(T value, Combine combine, T identity) {
  __shared__ T partial[kWarpSize];
  __shared__ T result;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  value = warp_reduce(value, combine);
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < static_cast<int>(blockDim.x / kWarpSize) ? partial[lane] : identity;
    value = warp_reduce(value, combine);
    if (lane == 0) result = value;
  }
  __syncthreads();
  return result;
}

// A float wrapped for warp_reduce / block_reduce.
struct Float {
  float v;
  __device__ static Float shuffle_xor(Float x, int offset) {
    return {__shfl_xor_sync(kFullMask, x.v, offset)};
  }
};

// A double wrapped for block_reduce (sums that must not lose bits to float).
struct Double {
  double v;
  __device__ static Double shuffle_xor(Double x, int offset) {
    return {__shfl_xor_sync(kFullMask, x.v, offset)};
  }
};

__device__ __forceinline__ float block_sum(float value) {
  return block_reduce(
             Float{value}, [](Float a, Float b) { return Float{a.v + b.v}; }, Float{0.0f})
      .v;
}

// kWidth consecutive floats, loaded and stored as one float4 when kWidth is 4
// (the pointer must then be 16-byte aligned): a quarter of the memory
// instructions for the bandwidth-bound row kernels.
template <int kWidth>
struct Floats {
  float v[kWidth];
  __device__ __forceinline__ static Floats load(const float* p) {
    Floats out;
    if constexpr (kWidth == 4) {
      const float4 q = *reinterpret_cast<const float4*>(p);
      out.v[0] = q.x, out.v[1] = q.y, out.v[2] = q.z, out.v[3] = q.w;
    } else {
#pragma unroll
      for (int i = 0; i < kWidth; ++i) out.v[i] = p[i];
    }
    return out;
  }
  __device__ __forceinline__ void store(float* p) const {
    if constexpr (kWidth == 4) {
      *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
#pragma unroll
      for (int i = 0; i < kWidth; ++i) p[i] = v[i];
    }
  }
};

// Whether rows of n floats starting at each pointer can be read as float4:
// every row start 16-byte aligned (the base is, and n is a multiple of 4).
inline bool float4_rows(int64_t n, std::initializer_list<const void*> pointers) {
  if (n % 4 != 0) return false;
  for (const void* p : pointers)
    if (p != nullptr && reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

}  // namespace bridle::cuda
