// softmax and log_softmax: the CUDA kernels (the ops and the CPU kernels are in
// softmax.cpp, the formulas and the backward derivations at its top).
//
// Contiguous rows (the softmax dim is the last one): a row is read twice, once
// for its max and sum, once to write the output.
//   - The first pass is online: max and sum in one read (online_softmax.cuh).
//   - Rows of up to kWarpRowMax elements get one warp each (no shared memory,
//     no __syncthreads, four rows per block); longer rows get a block each, or,
//     when too few to fill the GPU, several (row_split.h: two kernels, the
//     first writing each chunk's partial max and sum).
//   - Rows whose every start is 16-byte aligned (n a multiple of 4) are read and
//     written as float4: a quarter of the memory instructions.
// Rows with no finite maximum (all -inf, or a +inf or NaN) have no softmax; the
// kernel still writes them and reports the first through `first_bad_row`, and
// the op throws as the CPU one does.
//
// Strided rows (another dim): one thread per row walks it with stride `inner`,
// in three plain passes. Simple rather than fast: such softmaxes are rare.
//
// safe_softmax (masked_softmax and attention) and logsumexp take a warp per row
// along any dim: lane l reads elements l, l + 32, ... of its row (coalesced
// when the row is contiguous), then the warp combines its lanes' results.
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"
#include "ops/online_softmax.cuh"

namespace bridle::cuda {
namespace {

// Writes this thread's share of y = softmax(x) (or log_softmax) from the row's
// (max, sum); the groups as in add_elements.
template <int kWidth>
__device__ __forceinline__ void write_softmax(float* y, const float* x, int64_t groups, int tid,
                                              int threads, MaxSum row, float inv_temp, bool log) {
  const float inv_sum = 1.0f / row.sum, log_sum = logf(row.sum);
  for (int64_t k = tid; k < groups; k += threads) {
    Floats<kWidth> v = Floats<kWidth>::load(x + k * kWidth);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) {
      const float z = (v.v[i] - row.max) * inv_temp;
      v.v[i] = log ? z - log_sum : expf(z) * inv_sum;
    }
    v.store(y + k * kWidth);
  }
}

// This thread's share of the backward's row sum: sum_k g_k y_k (softmax) or
// sum_k g_k (log_softmax).
template <int kWidth>
__device__ __forceinline__ float thread_grad_sum(const float* y, const float* g, int64_t groups,
                                                 int tid, int threads, bool log) {
  float acc = 0.0f;
  for (int64_t k = tid; k < groups; k += threads) {
    const Floats<kWidth> gv = Floats<kWidth>::load(g + k * kWidth);
    const Floats<kWidth> yv = Floats<kWidth>::load(y + k * kWidth);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) acc += log ? gv.v[i] : gv.v[i] * yv.v[i];
  }
  return acc;
}

// softmax:     dx = y (g - sum_k g_k y_k) / T
// log_softmax: dx = (g - exp(y) sum_k g_k) / T
template <int kWidth>
__device__ __forceinline__ void write_softmax_grad(float* dx, const float* y, const float* g,
                                                   int64_t groups, int tid, int threads,
                                                   float row_sum, float inv_temp, bool log,
                                                   bool accumulate) {
  for (int64_t k = tid; k < groups; k += threads) {
    const Floats<kWidth> gv = Floats<kWidth>::load(g + k * kWidth);
    const Floats<kWidth> yv = Floats<kWidth>::load(y + k * kWidth);
    Floats<kWidth> d = {};
    if (accumulate) d = Floats<kWidth>::load(dx + k * kWidth);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) {
      const float grad = log ? gv.v[i] - expf(yv.v[i]) * row_sum : yv.v[i] * (gv.v[i] - row_sum);
      d.v[i] += grad * inv_temp;
    }
    d.store(dx + k * kWidth);
  }
}

// A warp or a block per row: both passes in one kernel (the second read of the
// row mostly hits L2).
template <bool kBlock, int kWidth>
__global__ void softmax_forward_kernel(float* __restrict__ out, const float* __restrict__ inp,
                                       int64_t rows, int64_t n, float inv_temp, bool log,
                                       unsigned long long* first_bad_row) {
  const RowSlot<kBlock> slot;
  if (slot.row >= rows) return;  // a whole warp at once: rows are warp-uniform
  const float* x = inp + slot.row * n;
  MaxSum acc{-INFINITY, 0.0f};
  bool has_nan = false;
  add_elements<kWidth>(acc, has_nan, x, n / kWidth, slot.tid, slot.threads, inv_temp);
  auto combine_op = [inv_temp](MaxSum a, MaxSum b) { return combine(a, b, inv_temp); };
  acc = reduce_row<kBlock>(acc, combine_op, MaxSum{-INFINITY, 0.0f});
  has_nan = row_any<kBlock>(has_nan);
  if ((has_nan || !isfinite(acc.max)) && slot.tid == 0)
    atomicMin(first_bad_row, static_cast<unsigned long long>(slot.row));
  write_softmax<kWidth>(out + slot.row * n, x, n / kWidth, slot.tid, slot.threads, acc, inv_temp,
                        log);
}

template <bool kBlock, int kWidth>
__global__ void softmax_backward_kernel(float* __restrict__ dinp, const float* __restrict__ out,
                                        const float* __restrict__ dout, int64_t rows, int64_t n,
                                        float inv_temp, bool log, bool accumulate) {
  const RowSlot<kBlock> slot;
  if (slot.row >= rows) return;
  const float* y = out + slot.row * n;
  const float* g = dout + slot.row * n;
  const float sum =
      row_sum<kBlock>(thread_grad_sum<kWidth>(y, g, n / kWidth, slot.tid, slot.threads, log));
  write_softmax_grad<kWidth>(dinp + slot.row * n, y, g, n / kWidth, slot.tid, slot.threads, sum,
                             inv_temp, log, accumulate);
}

// Few long rows, split across blocks (row_split.h). The forward's first kernel
// writes each chunk's (max, sum); the second combines its row's and writes its
// chunk. A NaN is reported by the chunk that holds it, a row without a finite
// maximum by its chunk 0.
template <int kWidth>
__global__ void softmax_chunk_max_sum_kernel(MaxSum* __restrict__ partials,
                                             const float* __restrict__ inp, int64_t n,
                                             int64_t chunk_len, float inv_temp,
                                             unsigned long long* first_bad_row) {
  const ChunkSlot chunk(n, chunk_len);
  bool has_nan;
  const MaxSum acc = chunk_max_sum<kWidth>(inp, n, chunk, inv_temp, has_nan);
  if (threadIdx.x != 0) return;
  partials[chunk.partial()] = acc;
  if (has_nan) atomicMin(first_bad_row, static_cast<unsigned long long>(chunk.row));
}

template <int kWidth>
__global__ void softmax_chunk_write_kernel(float* __restrict__ out, const float* __restrict__ inp,
                                           const MaxSum* __restrict__ partials, int64_t n,
                                           int64_t chunk_len, float inv_temp, bool log,
                                           unsigned long long* first_bad_row) {
  const ChunkSlot chunk(n, chunk_len);
  const MaxSum row = warp_combine_chunks(
      partials + chunk.row * chunk.chunks, chunk.chunks,
      [inv_temp](MaxSum a, MaxSum b) { return combine(a, b, inv_temp); }, MaxSum{-INFINITY, 0.0f});
  if (chunk.chunk == 0 && threadIdx.x == 0 && !isfinite(row.max))
    atomicMin(first_bad_row, static_cast<unsigned long long>(chunk.row));
  const int64_t offset = chunk.row * n + chunk.begin;
  write_softmax<kWidth>(out + offset, inp + offset, chunk.groups<kWidth>(), threadIdx.x, blockDim.x,
                        row, inv_temp, log);
}

// The backward's: each chunk's share of the row sum, then dx from their total
// (summed as warp_combine_chunks does).
template <int kWidth>
__global__ void softmax_backward_chunk_sum_kernel(Float* __restrict__ partials,
                                                  const float* __restrict__ out,
                                                  const float* __restrict__ dout, int64_t n,
                                                  int64_t chunk_len, bool log) {
  const ChunkSlot chunk(n, chunk_len);
  const int64_t offset = chunk.row * n + chunk.begin;
  const float sum = block_sum(thread_grad_sum<kWidth>(
      out + offset, dout + offset, chunk.groups<kWidth>(), threadIdx.x, blockDim.x, log));
  if (threadIdx.x == 0) partials[chunk.partial()] = Float{sum};
}

template <int kWidth>
__global__ void softmax_backward_chunk_write_kernel(float* __restrict__ dinp,
                                                    const float* __restrict__ out,
                                                    const float* __restrict__ dout,
                                                    const Float* __restrict__ partials, int64_t n,
                                                    int64_t chunk_len, float inv_temp, bool log,
                                                    bool accumulate) {
  const ChunkSlot chunk(n, chunk_len);
  const float sum = warp_combine_chunks(
                        partials + chunk.row * chunk.chunks, chunk.chunks,
                        [](Float a, Float b) { return Float{a.v + b.v}; }, Float{0.0f})
                        .v;
  const int64_t offset = chunk.row * n + chunk.begin;
  write_softmax_grad<kWidth>(dinp + offset, out + offset, dout + offset, chunk.groups<kWidth>(),
                             threadIdx.x, blockDim.x, sum, inv_temp, log, accumulate);
}

// A row along a dim other than the last: [outer, n, inner], one thread per (o, i).
__global__ void softmax_forward_strided_kernel(float* out, const float* inp, int64_t outer,
                                               int64_t n, int64_t inner, float inv_temp, bool log,
                                               unsigned long long* first_bad_row) {
  BRIDLE_GRID_STRIDE_LOOP(r, outer * inner) {
    const int64_t o = r / inner, i = r % inner;
    const float* x = inp + o * n * inner + i;
    float* y = out + o * n * inner + i;
    float max = -INFINITY;
    bool has_nan = false;
    for (int64_t j = 0; j < n; ++j) {
      max = fmaxf(max, x[j * inner]);
      has_nan |= isnan(x[j * inner]);
    }
    if (has_nan || !isfinite(max)) atomicMin(first_bad_row, static_cast<unsigned long long>(r));
    float sum = 0.0f;
    for (int64_t j = 0; j < n; ++j) sum += expf((x[j * inner] - max) * inv_temp);
    const float log_sum = logf(sum);
    for (int64_t j = 0; j < n; ++j) {
      const float z = (x[j * inner] - max) * inv_temp;
      y[j * inner] = log ? z - log_sum : expf(z) / sum;
    }
  }
}

__global__ void softmax_backward_strided_kernel(float* dinp, const float* out, const float* dout,
                                                int64_t outer, int64_t n, int64_t inner,
                                                float inv_temp, bool log, bool accumulate) {
  BRIDLE_GRID_STRIDE_LOOP(r, outer * inner) {
    const int64_t base = (r / inner) * n * inner + r % inner;
    float acc = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t k = base + j * inner;
      acc += log ? dout[k] : dout[k] * out[k];
    }
    for (int64_t j = 0; j < n; ++j) {
      const int64_t k = base + j * inner;
      const float grad = log ? dout[k] - expf(out[k]) * acc : out[k] * (dout[k] - acc);
      dinp[k] = (accumulate ? dinp[k] : 0.0f) + grad * inv_temp;
    }
  }
}

// A warp per row r of [outer, n, inner]; an all -inf row (everything masked)
// gives zeros, a row with +inf or NaN is reported.
__global__ void safe_softmax_forward_kernel(float* out, const float* inp, int64_t outer, int64_t n,
                                            int64_t inner, unsigned long long* first_bad_row) {
  const int lane = threadIdx.x % kWarpSize;
  BRIDLE_GRID_WARP_LOOP(r, outer * inner) {
    const int64_t base = (r / inner) * n * inner + r % inner;
    MaxSum acc{-INFINITY, 0.0f};
    bool has_nan = false;
    for (int64_t j = lane; j < n; j += kWarpSize) {
      const float v = inp[base + j * inner];
      add_element(acc, v, 1.0f);
      has_nan |= isnan(v);
    }
    acc = warp_reduce(acc, [](MaxSum a, MaxSum b) { return combine(a, b, 1.0f); });
    has_nan = __any_sync(kFullMask, has_nan);
    if ((has_nan || acc.max == INFINITY) && lane == 0)
      atomicMin(first_bad_row, static_cast<unsigned long long>(r));
    const bool masked = acc.max == -INFINITY;
    const float inv_sum = 1.0f / acc.sum;
    for (int64_t j = lane; j < n; j += kWarpSize) {
      const int64_t k = base + j * inner;
      out[k] = masked ? 0.0f : expf(inp[k] - acc.max) * inv_sum;
    }
  }
}

template <typename Index>
__global__ void keep_mask_kernel(float* out, const Index* mask, int64_t n) {
  BRIDLE_GRID_STRIDE_LOOP(i, n) out[i] = mask[i] != 0 ? 0.0f : -INFINITY;
}

// A warp per row: its max (NaN skipped, as std::max from -inf on the CPU), then
// the sum of exps against it.
__global__ void logsumexp_forward_kernel(float* out, const float* inp, int64_t outer, int64_t n,
                                         int64_t inner) {
  const int lane = threadIdx.x % kWarpSize;
  BRIDLE_GRID_WARP_LOOP(r, outer * inner) {
    const float* x = inp + (r / inner) * n * inner + r % inner;
    float max = -INFINITY;
    for (int64_t j = lane; j < n; j += kWarpSize) max = fmaxf(max, x[j * inner]);
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
      max = fmaxf(max, __shfl_xor_sync(kFullMask, max, offset));
    if (isinf(max)) {  // all -inf: lse = -inf; any +inf: lse = +inf
      if (lane == 0) out[r] = max;
      continue;
    }
    float sum = 0.0f;
    for (int64_t j = lane; j < n; j += kWarpSize) sum += expf(x[j * inner] - max);
    sum = warp_sum(sum);
    if (lane == 0) out[r] = max + logf(sum);  // NaN inputs give NaN, as on the CPU
  }
}

// dx = g exp(x - lse), none through a row whose lse is infinite.
__global__ void logsumexp_backward_kernel(float* dinp, const float* inp, const float* out,
                                          const float* dout, int64_t outer, int64_t n,
                                          int64_t inner, bool accumulate) {
  BRIDLE_GRID_STRIDE_LOOP(k, outer * n * inner) {
    const int64_t r = k / (n * inner) * inner + k % inner;
    const float lse = out[r];
    const float grad = isinf(lse) ? 0.0f : dout[r] * expf(inp[k] - lse);
    dinp[k] = accumulate ? dinp[k] + grad : grad;
  }
}

template <bool kBlock, int kWidth>
struct ForwardLaunch {
  template <typename... Args>
  static void run(unsigned blocks, int threads, cudaStream_t s, Args... args) {
    softmax_forward_kernel<kBlock, kWidth><<<blocks, threads, 0, s>>>(args...);
  }
};

template <bool kBlock, int kWidth>
struct BackwardLaunch {
  template <typename... Args>
  static void run(unsigned blocks, int threads, cudaStream_t s, Args... args) {
    softmax_backward_kernel<kBlock, kWidth><<<blocks, threads, 0, s>>>(args...);
  }
};

// The host side of the split kernels (launch_rows_or_split).
template <int kWidth>
struct ForwardSplit {
  static void run(const RowSplit& split, float* out, const float* inp, int64_t rows, int64_t n,
                  float inv_temp, bool log, unsigned long long* first_bad_row) {
    Workspace partials(sizeof(MaxSum) * static_cast<size_t>(rows * split.chunks));
    auto* p = static_cast<MaxSum*>(partials.data());
    const dim3 grid = split_grid(split, rows);
    softmax_chunk_max_sum_kernel<kWidth><<<grid, kSplitRowThreads, 0, stream()>>>(
        p, inp, n, split.chunk_len, inv_temp, first_bad_row);
    BRIDLE_CUDA_CHECK_LAUNCH("softmax_chunk_max_sum_kernel");
    softmax_chunk_write_kernel<kWidth><<<grid, kSplitRowThreads, 0, stream()>>>(
        out, inp, p, n, split.chunk_len, inv_temp, log, first_bad_row);
    BRIDLE_CUDA_CHECK_LAUNCH("softmax_chunk_write_kernel");
  }
};

template <int kWidth>
struct BackwardSplit {
  static void run(const RowSplit& split, float* dinp, const float* out, const float* dout,
                  int64_t rows, int64_t n, float inv_temp, bool log, bool accumulate) {
    Workspace partials(sizeof(Float) * static_cast<size_t>(rows * split.chunks));
    auto* p = static_cast<Float*>(partials.data());
    const dim3 grid = split_grid(split, rows);
    softmax_backward_chunk_sum_kernel<kWidth>
        <<<grid, kSplitRowThreads, 0, stream()>>>(p, out, dout, n, split.chunk_len, log);
    BRIDLE_CUDA_CHECK_LAUNCH("softmax_backward_chunk_sum_kernel");
    softmax_backward_chunk_write_kernel<kWidth><<<grid, kSplitRowThreads, 0, stream()>>>(
        dinp, out, dout, p, n, split.chunk_len, inv_temp, log, accumulate);
    BRIDLE_CUDA_CHECK_LAUNCH("softmax_backward_chunk_write_kernel");
  }
};

}  // namespace

void softmax_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner,
                     float inv_temp, bool log, unsigned long long* first_bad_row) {
  if (outer * n * inner == 0) return;
  if (inner != 1) {
    constexpr int kThreads = 256;
    softmax_forward_strided_kernel<<<blocks_for(outer * inner, kThreads), kThreads, 0, stream()>>>(
        out, inp, outer, n, inner, inv_temp, log, first_bad_row);
    BRIDLE_CUDA_CHECK_LAUNCH("softmax_forward_strided_kernel");
    return;
  }
  launch_rows_or_split<ForwardSplit, ForwardLaunch>(outer, n, float4_rows(n, {out, inp}), out, inp,
                                                    outer, n, inv_temp, log, first_bad_row);
  BRIDLE_CUDA_CHECK_LAUNCH("softmax_forward_kernel");
}

void softmax_backward(float* dinp, const float* out, const float* dout, int64_t outer, int64_t n,
                      int64_t inner, float inv_temp, bool log, bool accumulate) {
  if (outer * n * inner == 0) return;
  if (inner != 1) {
    constexpr int kThreads = 256;
    softmax_backward_strided_kernel<<<blocks_for(outer * inner, kThreads), kThreads, 0, stream()>>>(
        dinp, out, dout, outer, n, inner, inv_temp, log, accumulate);
    BRIDLE_CUDA_CHECK_LAUNCH("softmax_backward_strided_kernel");
    return;
  }
  launch_rows_or_split<BackwardSplit, BackwardLaunch>(outer, n, float4_rows(n, {dinp, out, dout}),
                                                      dinp, out, dout, outer, n, inv_temp, log,
                                                      accumulate);
  BRIDLE_CUDA_CHECK_LAUNCH("softmax_backward_kernel");
}

void safe_softmax_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner,
                          unsigned long long* first_bad_row) {
  if (outer * n * inner == 0) return;
  constexpr int kThreads = 256;
  safe_softmax_forward_kernel<<<blocks_for(outer * inner * kWarpSize, kThreads), kThreads, 0,
                                stream()>>>(out, inp, outer, n, inner, first_bad_row);
  BRIDLE_CUDA_CHECK_LAUNCH("safe_softmax_forward_kernel");
}

void keep_mask_to_additive(float* out, const int32_t* mask, int64_t n) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  keep_mask_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(out, mask, n);
  BRIDLE_CUDA_CHECK_LAUNCH("keep_mask_kernel");
}

void keep_mask_to_additive(float* out, const int64_t* mask, int64_t n) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  keep_mask_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(out, mask, n);
  BRIDLE_CUDA_CHECK_LAUNCH("keep_mask_kernel");
}

void logsumexp_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner) {
  if (outer * inner == 0) return;
  constexpr int kThreads = 256;
  logsumexp_forward_kernel<<<blocks_for(outer * inner * kWarpSize, kThreads), kThreads, 0,
                             stream()>>>(out, inp, outer, n, inner);
  BRIDLE_CUDA_CHECK_LAUNCH("logsumexp_forward_kernel");
}

void logsumexp_backward(float* dinp, const float* inp, const float* out, const float* dout,
                        int64_t outer, int64_t n, int64_t inner, bool accumulate) {
  if (outer * n * inner == 0) return;
  constexpr int kThreads = 256;
  logsumexp_backward_kernel<<<blocks_for(outer * n * inner, kThreads), kThreads, 0, stream()>>>(
      dinp, inp, out, dout, outer, n, inner, accumulate);
  BRIDLE_CUDA_CHECK_LAUNCH("logsumexp_backward_kernel");
}

}  // namespace bridle::cuda
