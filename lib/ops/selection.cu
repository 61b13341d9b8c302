// hardmax and topk on a GPU: the CUDA kernels (the ops and the CPU loops are in
// selection.cpp).
//
// A warp per row of the [outer, n, inner] view: its lanes take every 32nd entry
// and a butterfly of shuffles picks the row's best (value, index) pair. topk
// repeats that pick k times, each time among the entries that come after the
// previous pick in the output order, so it needs no scratch memory and no sort;
// that costs k passes over the row, fine for the small k topk is used with.
// The output order is a strict total order on (value, index): by value, ties to
// the lower index, which is the order the CPU's stable sort produces.
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

constexpr int kThreads = 256;

// A candidate entry of a row; j < 0 when a lane has none.
struct Pick {
  float v;
  int64_t j;
};

// Whether entry (a, ia) comes before (b, ib) in topk's output: larger (smaller)
// values first, ties to the lower index. NaN counts as the largest value, so
// the order stays total (the CPU's comparisons leave NaN's place unspecified).
__device__ bool comes_before(float a, int64_t ia, float b, int64_t ib, bool largest) {
  const bool a_nan = isnan(a), b_nan = isnan(b);
  if (a_nan || b_nan) {
    if (a_nan && b_nan) return ia < ib;
    return largest ? a_nan : b_nan;
  }
  if (a != b) return largest ? a > b : a < b;
  return ia < ib;
}

__device__ Pick first_of(Pick a, Pick b, bool largest) {
  if (a.j < 0) return b;
  if (b.j < 0) return a;
  return comes_before(a.v, a.j, b.v, b.j, largest) ? a : b;
}

// The first pick of the warp's 32 lanes, on every lane.
__device__ Pick warp_first(Pick p, bool largest) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const Pick other{__shfl_xor_sync(kFullMask, p.v, offset),
                     __shfl_xor_sync(kFullMask, p.j, offset)};
    p = first_of(p, other, largest);
  }
  return p;
}

// The CPU loop keeps index 0 unless a later entry is strictly larger than the
// current best, so NaN never wins, and a NaN at index 0 is never replaced: the
// answer is the first largest non-NaN entry, or 0 when entry 0 is NaN.
__global__ void hardmax_kernel(float* out, const float* inp, int64_t n, int64_t inner,
                               int64_t rows) {
  const int lane = threadIdx.x % kWarpSize;
  BRIDLE_GRID_WARP_LOOP(r, rows) {
    const int64_t base = (r / inner) * n * inner + r % inner;  // entry j at base + j * inner
    Pick best{0.0f, -1};
    for (int64_t j = lane; j < n; j += kWarpSize) {
      const float v = inp[base + j * inner];
      if (!isnan(v)) best = first_of(best, Pick{v, j}, true);
    }
    best = warp_first(best, true);
    const int64_t winner = best.j < 0 || isnan(inp[base]) ? 0 : best.j;
    for (int64_t j = lane; j < n; j += kWarpSize) out[base + j * inner] = j == winner ? 1.0f : 0.0f;
  }
}

__global__ void topk_kernel(float* values, int64_t* indices, const float* inp, int64_t n,
                            int64_t inner, int64_t k, bool largest, int64_t rows) {
  const int lane = threadIdx.x % kWarpSize;
  BRIDLE_GRID_WARP_LOOP(r, rows) {
    const int64_t o = r / inner, i = r % inner;
    const float* row = inp + o * n * inner + i;  // entry j at row[j * inner]
    Pick previous{0.0f, -1};
    for (int64_t t = 0; t < k; ++t) {
      Pick best{0.0f, -1};
      for (int64_t j = lane; j < n; j += kWarpSize) {
        const float v = row[j * inner];
        if (previous.j >= 0 && !comes_before(previous.v, previous.j, v, j, largest)) continue;
        best = first_of(best, Pick{v, j}, largest);
      }
      best = warp_first(best, largest);  // k <= n: some entry is always left
      if (lane == 0) {
        values[(o * k + t) * inner + i] = best.v;
        indices[(o * k + t) * inner + i] = best.j;
      }
      previous = best;
    }
  }
}

// A row's k indices are distinct and rows touch disjoint entries, so the adds
// never race.
__global__ void topk_backward_kernel(float* dinp, const float* dvalues, const int64_t* indices,
                                     int64_t n, int64_t inner, int64_t k, int64_t total) {
  BRIDLE_GRID_STRIDE_LOOP(e, total) {
    const int64_t o = e / (k * inner), i = e % inner;
    dinp[(o * n + indices[e]) * inner + i] += dvalues[e];
  }
}

}  // namespace

void hardmax_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner) {
  const int64_t rows = outer * inner;
  if (rows * n == 0) return;
  hardmax_kernel<<<blocks_for(rows * kWarpSize, kThreads), kThreads, 0, stream()>>>(out, inp, n,
                                                                                    inner, rows);
  BRIDLE_CUDA_CHECK_LAUNCH("hardmax_kernel");
}

void topk_forward(float* values, int64_t* indices, const float* inp, int64_t outer, int64_t n,
                  int64_t inner, int64_t k, bool largest) {
  const int64_t rows = outer * inner;
  if (rows * k == 0) return;
  topk_kernel<<<blocks_for(rows * kWarpSize, kThreads), kThreads, 0, stream()>>>(
      values, indices, inp, n, inner, k, largest, rows);
  BRIDLE_CUDA_CHECK_LAUNCH("topk_kernel");
}

void topk_backward(float* dinp, const float* dvalues, const int64_t* indices, int64_t outer,
                   int64_t n, int64_t inner, int64_t k, bool accumulate) {
  if (!accumulate && outer * n * inner > 0)
    BRIDLE_CUDA_CHECK(
        cudaMemsetAsync(dinp, 0, static_cast<size_t>(outer * n * inner) * sizeof(float), stream()));
  const int64_t total = outer * k * inner;
  if (total == 0) return;
  topk_backward_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream()>>>(
      dinp, dvalues, indices, n, inner, k, total);
  BRIDLE_CUDA_CHECK_LAUNCH("topk_backward_kernel");
}

}  // namespace bridle::cuda
