// Fused softmax cross-entropy with class targets, and nll_loss: the CUDA kernels
// (the ops, the CPU kernels and the derivation are in cross_entropy.cpp).
//
// Forward, one row per warp (C <= kWarpRowMax) or per block, or a few blocks per
// row when the rows are few and long (row_split.h): one online pass over the
// logits gives lse = max + log(sum) (online_softmax.cuh) and, with label
// smoothing, sum_c w_c z_c and sum_c w_c in the same read; then
//   nll    = w_y (lse - z_y)
//   smooth = sum_c w_c (lse - z_c) = lse sum_c w_c - sum_c w_c z_c
//   loss   = (1 - eps) nll + eps / C smooth.
// Backward needs no reduction (lse is saved), so it is elementwise over [B, C]:
//   dz_j = g_b (p_j P - s w_j) - [j == y] a,   p_j = exp(z_j - lse_b),
// with a = (1 - eps) w_y, s = eps / C and P = a + s sum_c w_c, per row.
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"
#include "ops/online_softmax.cuh"

namespace bridle::cuda {
namespace {

// What one pass over (part of) a row of logits gathers: its (max, sum) and,
// with label smoothing, sum_c w_c z_c and sum_c w_c.
struct RowSums {
  MaxSum max_sum{-INFINITY, 0.0f};
  float weighted_logits = 0.0f, weights = 0.0f;
  __device__ static RowSums shuffle_xor(RowSums x, int offset) {
    return {MaxSum::shuffle_xor(x.max_sum, offset),
            __shfl_xor_sync(kFullMask, x.weighted_logits, offset),
            __shfl_xor_sync(kFullMask, x.weights, offset)};
  }
};

__device__ __forceinline__ RowSums combine(RowSums a, RowSums b) {
  return {combine(a.max_sum, b.max_sum, 1.0f), a.weighted_logits + b.weighted_logits,
          a.weights + b.weights};
}

// Adds this thread's share of the logits z (groups as in add_elements); weight,
// when given, is indexed as z is.
template <int kWidth>
__device__ __forceinline__ void add_logits(RowSums& acc, const float* z, const float* weight,
                                           int64_t groups, int tid, int threads, float smoothing) {
  for (int64_t k = tid; k < groups; k += threads) {
    const Floats<kWidth> v = Floats<kWidth>::load(z + k * kWidth);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) {
      add_element(acc.max_sum, v.v[i], 1.0f);
      if (smoothing > 0.0f) {
        const float w = weight ? weight[k * kWidth + i] : 1.0f;
        acc.weighted_logits += w * v.v[i];
        acc.weights += w;
      }
    }
  }
}

// A row's loss from its sums. A NaN logit makes the sum NaN, and a row without
// a finite maximum has a NaN lse (row_lse): both give a NaN loss, which the op
// reports.
__device__ __forceinline__ void write_row_loss(float* row_loss, float* lse, int64_t row,
                                               const RowSums& sums, float z_y, float w_y, int64_t C,
                                               float smoothing) {
  const float l = row_lse(sums.max_sum);
  const float nll = w_y * (l - z_y);
  const float smooth = l * sums.weights - sums.weighted_logits;
  lse[row] = l;
  row_loss[row] = smoothing > 0.0f
                      ? (1.0f - smoothing) * nll + smoothing / static_cast<float>(C) * smooth
                      : nll;
}

template <bool kBlock, int kWidth, typename Target>
__global__ void cross_entropy_forward_kernel(float* __restrict__ row_loss, float* __restrict__ lse,
                                             const float* __restrict__ logits,
                                             const Target* __restrict__ targets,
                                             const float* __restrict__ weight, int64_t B, int64_t C,
                                             int64_t ignore_index, float smoothing) {
  const RowSlot<kBlock> slot;
  if (slot.row >= B) return;
  const int64_t y = static_cast<int64_t>(targets[slot.row]);
  if (y == ignore_index) {  // the whole warp or block leaves together
    if (slot.tid == 0) row_loss[slot.row] = lse[slot.row] = 0.0f;
    return;
  }
  const float* z = logits + slot.row * C;
  RowSums acc;
  add_logits<kWidth>(acc, z, weight, C / kWidth, slot.tid, slot.threads, smoothing);
  acc.max_sum = reduce_row<kBlock>(
      acc.max_sum, [](MaxSum a, MaxSum b) { return combine(a, b, 1.0f); }, MaxSum{-INFINITY, 0.0f});
  if (smoothing > 0.0f) {
    acc.weighted_logits = row_sum<kBlock>(acc.weighted_logits);
    acc.weights = row_sum<kBlock>(acc.weights);
  }
  if (slot.tid == 0)
    write_row_loss(row_loss, lse, slot.row, acc, z[y], weight ? weight[y] : 1.0f, C, smoothing);
}

// Few long rows, split across blocks (row_split.h): each chunk's sums, then a
// warp per row combines its chunks' (warp_combine_chunks).
template <int kWidth, typename Target>
__global__ void cross_entropy_chunk_sums_kernel(RowSums* __restrict__ partials,
                                                const float* __restrict__ logits,
                                                const Target* __restrict__ targets,
                                                const float* __restrict__ weight, int64_t C,
                                                int64_t chunk_len, int64_t ignore_index,
                                                float smoothing) {
  const ChunkSlot chunk(C, chunk_len);
  if (static_cast<int64_t>(targets[chunk.row]) == ignore_index) return;  // the whole block
  RowSums acc;
  add_logits<kWidth>(acc, logits + chunk.row * C + chunk.begin,
                     weight ? weight + chunk.begin : nullptr, chunk.groups<kWidth>(), threadIdx.x,
                     blockDim.x, smoothing);
  acc.max_sum = block_reduce(
      acc.max_sum, [](MaxSum a, MaxSum b) { return combine(a, b, 1.0f); }, MaxSum{-INFINITY, 0.0f});
  if (smoothing > 0.0f) {
    acc.weighted_logits = block_sum(acc.weighted_logits);
    acc.weights = block_sum(acc.weights);
  }
  if (threadIdx.x == 0) partials[chunk.partial()] = acc;
}

template <typename Target>
__global__ void cross_entropy_combine_chunks_kernel(
    float* __restrict__ row_loss, float* __restrict__ lse, const RowSums* __restrict__ partials,
    const float* __restrict__ logits, const Target* __restrict__ targets,
    const float* __restrict__ weight, int64_t B, int64_t C, int64_t chunks, int64_t ignore_index,
    float smoothing) {
  const int lane = threadIdx.x % kWarpSize;
  BRIDLE_GRID_WARP_LOOP(b, B) {
    const int64_t y = static_cast<int64_t>(targets[b]);
    if (y == ignore_index) {  // the whole warp
      if (lane == 0) row_loss[b] = lse[b] = 0.0f;
      continue;
    }
    const RowSums sums = warp_combine_chunks(
        partials + b * chunks, chunks, [](RowSums x, RowSums z) { return combine(x, z); },
        RowSums{});
    if (lane == 0)
      write_row_loss(row_loss, lse, b, sums, logits[b * C + y], weight ? weight[y] : 1.0f, C,
                     smoothing);
  }
}

// The host side of the split kernels (launch_rows_or_split).
template <int kWidth>
struct ForwardSplit {
  template <typename Target>
  static void run(const RowSplit& split, float* row_loss, float* lse, const float* logits,
                  const Target* targets, const float* weight, int64_t B, int64_t C,
                  int64_t ignore_index, float smoothing) {
    Workspace partials(sizeof(RowSums) * static_cast<size_t>(B * split.chunks));
    auto* p = static_cast<RowSums*>(partials.data());
    cross_entropy_chunk_sums_kernel<kWidth>
        <<<split_grid(split, B), kSplitRowThreads, 0, stream()>>>(
            p, logits, targets, weight, C, split.chunk_len, ignore_index, smoothing);
    BRIDLE_CUDA_CHECK_LAUNCH("cross_entropy_chunk_sums_kernel");
    constexpr int kThreads = 128;
    cross_entropy_combine_chunks_kernel<<<blocks_for(B * kWarpSize, kThreads), kThreads, 0,
                                          stream()>>>(row_loss, lse, p, logits, targets, weight, B,
                                                      C, split.chunks, ignore_index, smoothing);
    BRIDLE_CUDA_CHECK_LAUNCH("cross_entropy_combine_chunks_kernel");
  }
};

template <int kWidth, typename Target>
__global__ void cross_entropy_backward_kernel(
    float* __restrict__ dlogits, const float* __restrict__ logits, const float* __restrict__ lse,
    const Target* __restrict__ targets, const float* __restrict__ weight, float total_weight,
    const float* __restrict__ dout, float dout_scale, bool per_row, int64_t B, int64_t C,
    int64_t ignore_index, float smoothing, bool accumulate) {
  // Each thread takes kWidth consecutive elements of one row (C % kWidth == 0).
  BRIDLE_GRID_STRIDE_LOOP(group, B * C / kWidth) {
    const int64_t first = group * kWidth, b = first / C, j0 = first % C;
    const int64_t y = static_cast<int64_t>(targets[b]);
    Floats<kWidth> d = {};
    if (accumulate) d = Floats<kWidth>::load(dlogits + first);
    if (y != ignore_index) {
      const float g = per_row ? dout[b] : dout[0] * dout_scale;
      const float a = g * (1.0f - smoothing) * (weight ? weight[y] : 1.0f);
      const float s = g * smoothing / static_cast<float>(C);
      const float p_coefficient = a + s * total_weight, l = lse[b];
      const Floats<kWidth> z = Floats<kWidth>::load(logits + first);
#pragma unroll
      for (int i = 0; i < kWidth; ++i) {
        const int64_t j = j0 + i;
        d.v[i] += expf(z.v[i] - l) * p_coefficient - s * (weight ? weight[j] : 1.0f) -
                  (j == y ? a : 0.0f);
      }
    }
    d.store(dlogits + first);
  }
}

template <bool kBlock, int kWidth>
struct ForwardLaunch {
  template <typename... Args>
  static void run(unsigned blocks, int threads, cudaStream_t s, float* row_loss, float* lse,
                  const float* logits, Args... args) {
    cross_entropy_forward_kernel<kBlock, kWidth>
        <<<blocks, threads, 0, s>>>(row_loss, lse, logits, args...);
  }
};

template <typename Target>
void forward(float* row_loss, float* lse, const float* logits, const Target* targets,
             const float* weight, int64_t B, int64_t C, int64_t ignore_index, float smoothing) {
  if (B == 0) return;
  launch_rows_or_split<ForwardSplit, ForwardLaunch>(B, C, float4_rows(C, {logits}), row_loss, lse,
                                                    logits, targets, weight, B, C, ignore_index,
                                                    smoothing);
  BRIDLE_CUDA_CHECK_LAUNCH("cross_entropy_forward_kernel");
}

template <typename Target>
void backward(float* dlogits, const float* logits, const float* lse, const Target* targets,
              const float* weight, float total_weight, const float* dout, float dout_scale,
              bool per_row, int64_t B, int64_t C, int64_t ignore_index, float smoothing,
              bool accumulate) {
  if (B * C == 0) return;
  constexpr int kThreads = 256;
  if (float4_rows(C, {dlogits, logits})) {
    cross_entropy_backward_kernel<4><<<blocks_for(B * C / 4, kThreads), kThreads, 0, stream()>>>(
        dlogits, logits, lse, targets, weight, total_weight, dout, dout_scale, per_row, B, C,
        ignore_index, smoothing, accumulate);
  } else {
    cross_entropy_backward_kernel<1><<<blocks_for(B * C, kThreads), kThreads, 0, stream()>>>(
        dlogits, logits, lse, targets, weight, total_weight, dout, dout_scale, per_row, B, C,
        ignore_index, smoothing, accumulate);
  }
  BRIDLE_CUDA_CHECK_LAUNCH("cross_entropy_backward_kernel");
}

// Probability targets: a row per warp or block, two reads of it. The first
// finds lse online; the second sums w_c t'_c (lse - z_c) term by term, as the
// CPU does, rather than lse sum w t' - sum w t' z, which loses the loss to
// cancellation when the logits are large and the loss small. Few long rows are
// split across blocks: a third kernel then adds each row's chunks' terms
// (a warp per row).

// The loss terms of this thread's share of a row (groups as in add_elements),
// t'_c = (1 - smoothing) t_c + smoothing / C:
//   sum  += w_c t'_c (lse - z_c)
//   mass += w_c t'_c
template <int kWidth>
__device__ __forceinline__ void add_soft_terms(float& sum, float& mass, const float* z,
                                               const float* t, const float* weight, int64_t groups,
                                               int tid, int threads, float l, float smoothing,
                                               int64_t C) {
  const float keep = 1.0f - smoothing, spread = smoothing / static_cast<float>(C);
  for (int64_t k = tid; k < groups; k += threads) {
    const Floats<kWidth> zv = Floats<kWidth>::load(z + k * kWidth);
    const Floats<kWidth> tv = Floats<kWidth>::load(t + k * kWidth);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) {
      const float wt = (weight ? weight[k * kWidth + i] : 1.0f) * (keep * tv.v[i] + spread);
      sum += wt * (l - zv.v[i]);
      mass += wt;
    }
  }
}

template <bool kBlock, int kWidth>
__global__ void cross_entropy_soft_forward_kernel(
    float* __restrict__ row_loss, float* __restrict__ lse, float* __restrict__ target_mass,
    const float* __restrict__ logits, const float* __restrict__ targets,
    const float* __restrict__ weight, int64_t B, int64_t C, float smoothing) {
  const RowSlot<kBlock> slot;
  if (slot.row >= B) return;
  const float* z = logits + slot.row * C;
  const float* t = targets + slot.row * C;
  MaxSum acc{-INFINITY, 0.0f};
  bool has_nan = false;  // unused: a NaN shows in the loss
  add_elements<kWidth>(acc, has_nan, z, C / kWidth, slot.tid, slot.threads, 1.0f);
  acc = reduce_row<kBlock>(
      acc, [](MaxSum a, MaxSum b) { return combine(a, b, 1.0f); }, MaxSum{-INFINITY, 0.0f});
  const float l = row_lse(acc);
  float sum = 0.0f, mass = 0.0f;
  add_soft_terms<kWidth>(sum, mass, z, t, weight, C / kWidth, slot.tid, slot.threads, l, smoothing,
                         C);
  sum = row_sum<kBlock>(sum);
  mass = row_sum<kBlock>(mass);
  if (slot.tid != 0) return;
  row_loss[slot.row] = sum;
  lse[slot.row] = l;
  target_mass[slot.row] = mass;
}

template <int kWidth>
__global__ void cross_entropy_soft_chunk_max_sum_kernel(MaxSum* __restrict__ partials,
                                                        const float* __restrict__ logits, int64_t C,
                                                        int64_t chunk_len) {
  const ChunkSlot chunk(C, chunk_len);
  bool has_nan;  // unused: a NaN shows in the loss
  const MaxSum acc = chunk_max_sum<kWidth>(logits, C, chunk, 1.0f, has_nan);
  if (threadIdx.x == 0) partials[chunk.partial()] = acc;
}

// A chunk's share of its row's loss and target mass; chunk 0 writes the row's lse.
struct SoftTerms {
  float sum, mass;
  __device__ static SoftTerms shuffle_xor(SoftTerms x, int offset) {
    return {__shfl_xor_sync(kFullMask, x.sum, offset), __shfl_xor_sync(kFullMask, x.mass, offset)};
  }
};

template <int kWidth>
__global__ void cross_entropy_soft_chunk_terms_kernel(
    SoftTerms* __restrict__ terms, float* __restrict__ lse, const MaxSum* __restrict__ partials,
    const float* __restrict__ logits, const float* __restrict__ targets,
    const float* __restrict__ weight, int64_t C, int64_t chunk_len, float smoothing) {
  const ChunkSlot chunk(C, chunk_len);
  const float l = row_lse(warp_combine_chunks(
      partials + chunk.row * chunk.chunks, chunk.chunks,
      [](MaxSum a, MaxSum b) { return combine(a, b, 1.0f); }, MaxSum{-INFINITY, 0.0f}));
  const int64_t offset = chunk.row * C + chunk.begin;
  float sum = 0.0f, mass = 0.0f;
  add_soft_terms<kWidth>(sum, mass, logits + offset, targets + offset,
                         weight ? weight + chunk.begin : nullptr, chunk.groups<kWidth>(),
                         threadIdx.x, blockDim.x, l, smoothing, C);
  sum = block_sum(sum);
  mass = block_sum(mass);
  if (threadIdx.x != 0) return;
  terms[chunk.partial()] = {sum, mass};
  if (chunk.chunk == 0) lse[chunk.row] = l;
}

__global__ void cross_entropy_soft_combine_chunks_kernel(float* __restrict__ row_loss,
                                                         float* __restrict__ target_mass,
                                                         const SoftTerms* __restrict__ terms,
                                                         int64_t B, int64_t chunks) {
  BRIDLE_GRID_WARP_LOOP(b, B) {
    const SoftTerms row = warp_combine_chunks(
        terms + b * chunks, chunks,
        [](SoftTerms x, SoftTerms y) {
          return SoftTerms{x.sum + y.sum, x.mass + y.mass};
        },
        SoftTerms{0.0f, 0.0f});
    if (threadIdx.x % kWarpSize != 0) continue;
    row_loss[b] = row.sum;
    target_mass[b] = row.mass;
  }
}

template <int kWidth>
struct SoftForwardSplit {
  static void run(const RowSplit& split, float* row_loss, float* lse, float* target_mass,
                  const float* logits, const float* targets, const float* weight, int64_t B,
                  int64_t C, float smoothing) {
    const size_t count = static_cast<size_t>(B * split.chunks);
    Workspace max_sums(sizeof(MaxSum) * count), terms(sizeof(SoftTerms) * count);
    auto* m = static_cast<MaxSum*>(max_sums.data());
    auto* t = static_cast<SoftTerms*>(terms.data());
    const dim3 grid = split_grid(split, B);
    cross_entropy_soft_chunk_max_sum_kernel<kWidth>
        <<<grid, kSplitRowThreads, 0, stream()>>>(m, logits, C, split.chunk_len);
    BRIDLE_CUDA_CHECK_LAUNCH("cross_entropy_soft_chunk_max_sum_kernel");
    cross_entropy_soft_chunk_terms_kernel<kWidth><<<grid, kSplitRowThreads, 0, stream()>>>(
        t, lse, m, logits, targets, weight, C, split.chunk_len, smoothing);
    BRIDLE_CUDA_CHECK_LAUNCH("cross_entropy_soft_chunk_terms_kernel");
    constexpr int kThreads = 128;
    cross_entropy_soft_combine_chunks_kernel<<<blocks_for(B * kWarpSize, kThreads), kThreads, 0,
                                               stream()>>>(row_loss, target_mass, t, B,
                                                           split.chunks);
    BRIDLE_CUDA_CHECK_LAUNCH("cross_entropy_soft_combine_chunks_kernel");
  }
};

template <int kWidth>
__global__ void cross_entropy_soft_backward_kernel(
    float* __restrict__ dlogits, const float* __restrict__ logits, const float* __restrict__ lse,
    const float* __restrict__ target_mass, const float* __restrict__ targets,
    const float* __restrict__ weight, const float* __restrict__ dout, float dout_scale,
    bool per_row, int64_t B, int64_t C, float smoothing, bool accumulate) {
  const float keep = 1.0f - smoothing, spread = smoothing / static_cast<float>(C);
  BRIDLE_GRID_STRIDE_LOOP(group, B * C / kWidth) {
    const int64_t first = group * kWidth, b = first / C, j0 = first % C;
    const float g = per_row ? dout[b] : dout[0] * dout_scale;
    const float p_coefficient = g * target_mass[b], l = lse[b];
    const Floats<kWidth> z = Floats<kWidth>::load(logits + first);
    const Floats<kWidth> t = Floats<kWidth>::load(targets + first);
    Floats<kWidth> d = {};
    if (accumulate) d = Floats<kWidth>::load(dlogits + first);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) {
      const float wt = (weight ? weight[j0 + i] : 1.0f) * (keep * t.v[i] + spread);
      d.v[i] += expf(z.v[i] - l) * p_coefficient - g * wt;
    }
    d.store(dlogits + first);
  }
}

template <bool kBlock, int kWidth>
struct SoftForwardLaunch {
  template <typename... Args>
  static void run(unsigned blocks, int threads, cudaStream_t s, Args... args) {
    cross_entropy_soft_forward_kernel<kBlock, kWidth><<<blocks, threads, 0, s>>>(args...);
  }
};

// nll_loss: one thread per row, reading only the target's entry.
template <typename Target>
__global__ void nll_loss_forward_kernel(float* row_loss, const float* log_probs,
                                        const Target* targets, const float* weight, int64_t B,
                                        int64_t C, int64_t ignore_index) {
  BRIDLE_GRID_STRIDE_LOOP(b, B) {
    const int64_t y = static_cast<int64_t>(targets[b]);
    row_loss[b] = y == ignore_index ? 0.0f : -(weight ? weight[y] : 1.0f) * log_probs[b * C + y];
  }
}

// d loss_b / d log_probs_bj = -w_y [j == y]: one entry per row.
template <typename Target>
__global__ void nll_loss_backward_kernel(float* dlog_probs, const Target* targets,
                                         const float* weight, const float* dout, float dout_scale,
                                         bool per_row, int64_t B, int64_t C, int64_t ignore_index) {
  BRIDLE_GRID_STRIDE_LOOP(b, B) {
    const int64_t y = static_cast<int64_t>(targets[b]);
    if (y == ignore_index) continue;
    const float g = per_row ? dout[b] : dout[0] * dout_scale;
    dlog_probs[b * C + y] -= (weight ? weight[y] : 1.0f) * g;
  }
}

template <typename Target>
void nll_forward(float* row_loss, const float* log_probs, const Target* targets,
                 const float* weight, int64_t B, int64_t C, int64_t ignore_index) {
  if (B == 0) return;
  constexpr int kThreads = 256;
  nll_loss_forward_kernel<<<blocks_for(B, kThreads), kThreads, 0, stream()>>>(
      row_loss, log_probs, targets, weight, B, C, ignore_index);
  BRIDLE_CUDA_CHECK_LAUNCH("nll_loss_forward_kernel");
}

template <typename Target>
void nll_backward(float* dlog_probs, const Target* targets, const float* weight, const float* dout,
                  float dout_scale, bool per_row, int64_t B, int64_t C, int64_t ignore_index,
                  bool accumulate) {
  if (B * C == 0) return;
  if (!accumulate)
    BRIDLE_CUDA_CHECK(
        cudaMemsetAsync(dlog_probs, 0, static_cast<size_t>(B * C) * sizeof(float), stream()));
  constexpr int kThreads = 256;
  nll_loss_backward_kernel<<<blocks_for(B, kThreads), kThreads, 0, stream()>>>(
      dlog_probs, targets, weight, dout, dout_scale, per_row, B, C, ignore_index);
  BRIDLE_CUDA_CHECK_LAUNCH("nll_loss_backward_kernel");
}

}  // namespace

void nll_loss_forward(float* row_loss, const float* log_probs, const int64_t* targets,
                      const float* weight, int64_t B, int64_t C, int64_t ignore_index) {
  nll_forward(row_loss, log_probs, targets, weight, B, C, ignore_index);
}

void nll_loss_forward(float* row_loss, const float* log_probs, const int32_t* targets,
                      const float* weight, int64_t B, int64_t C, int64_t ignore_index) {
  nll_forward(row_loss, log_probs, targets, weight, B, C, ignore_index);
}

void nll_loss_backward(float* dlog_probs, const int64_t* targets, const float* weight,
                       const float* dout, float dout_scale, bool per_row, int64_t B, int64_t C,
                       int64_t ignore_index, bool accumulate) {
  nll_backward(dlog_probs, targets, weight, dout, dout_scale, per_row, B, C, ignore_index,
               accumulate);
}

void nll_loss_backward(float* dlog_probs, const int32_t* targets, const float* weight,
                       const float* dout, float dout_scale, bool per_row, int64_t B, int64_t C,
                       int64_t ignore_index, bool accumulate) {
  nll_backward(dlog_probs, targets, weight, dout, dout_scale, per_row, B, C, ignore_index,
               accumulate);
}

void cross_entropy_soft_forward(float* row_loss, float* lse, float* target_mass,
                                const float* logits, const float* targets, const float* weight,
                                int64_t B, int64_t C, float smoothing) {
  if (B == 0) return;
  launch_rows_or_split<SoftForwardSplit, SoftForwardLaunch>(B, C, float4_rows(C, {logits, targets}),
                                                            row_loss, lse, target_mass, logits,
                                                            targets, weight, B, C, smoothing);
  BRIDLE_CUDA_CHECK_LAUNCH("cross_entropy_soft_forward_kernel");
}

void cross_entropy_soft_backward(float* dlogits, const float* logits, const float* lse,
                                 const float* target_mass, const float* targets,
                                 const float* weight, const float* dout, float dout_scale,
                                 bool per_row, int64_t B, int64_t C, float smoothing,
                                 bool accumulate) {
  if (B * C == 0) return;
  constexpr int kThreads = 256;
  if (float4_rows(C, {dlogits, logits, targets})) {
    cross_entropy_soft_backward_kernel<4>
        <<<blocks_for(B * C / 4, kThreads), kThreads, 0, stream()>>>(
            dlogits, logits, lse, target_mass, targets, weight, dout, dout_scale, per_row, B, C,
            smoothing, accumulate);
  } else {
    cross_entropy_soft_backward_kernel<1><<<blocks_for(B * C, kThreads), kThreads, 0, stream()>>>(
        dlogits, logits, lse, target_mass, targets, weight, dout, dout_scale, per_row, B, C,
        smoothing, accumulate);
  }
  BRIDLE_CUDA_CHECK_LAUNCH("cross_entropy_soft_backward_kernel");
}

void cross_entropy_forward(float* row_loss, float* lse, const float* logits, const int64_t* targets,
                           const float* weight, int64_t B, int64_t C, int64_t ignore_index,
                           float smoothing) {
  forward(row_loss, lse, logits, targets, weight, B, C, ignore_index, smoothing);
}

void cross_entropy_forward(float* row_loss, float* lse, const float* logits, const int32_t* targets,
                           const float* weight, int64_t B, int64_t C, int64_t ignore_index,
                           float smoothing) {
  forward(row_loss, lse, logits, targets, weight, B, C, ignore_index, smoothing);
}

void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const int64_t* targets, const float* weight, float total_weight,
                            const float* dout, float dout_scale, bool per_row, int64_t B, int64_t C,
                            int64_t ignore_index, float smoothing, bool accumulate) {
  backward(dlogits, logits, lse, targets, weight, total_weight, dout, dout_scale, per_row, B, C,
           ignore_index, smoothing, accumulate);
}

void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const int32_t* targets, const float* weight, float total_weight,
                            const float* dout, float dout_scale, bool per_row, int64_t B, int64_t C,
                            int64_t ignore_index, float smoothing, bool accumulate) {
  backward(dlogits, logits, lse, targets, weight, total_weight, dout, dout_scale, per_row, B, C,
           ignore_index, smoothing, accumulate);
}

}  // namespace bridle::cuda
