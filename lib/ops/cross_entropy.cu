// Fused softmax cross-entropy with class targets, and nll_loss: the CUDA kernels
// (the ops, the CPU kernels and the derivation are in cross_entropy.cpp).
//
// Forward, one row per warp (C <= kWarpRowMax) or per block: one online pass over
// the logits gives lse = max + log(sum) (online_softmax.cuh) and, with label
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
  MaxSum acc{-INFINITY, 0.0f};
  float weighted_logits = 0.0f, weights = 0.0f;  // sum_c w_c z_c, sum_c w_c (smoothing only)
  for (int64_t k = slot.tid; k < C / kWidth; k += slot.threads) {
    const Floats<kWidth> v = Floats<kWidth>::load(z + k * kWidth);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) {
      add_element(acc, v.v[i], 1.0f);
      if (smoothing > 0.0f) {
        const float w = weight ? weight[k * kWidth + i] : 1.0f;
        weighted_logits += w * v.v[i];
        weights += w;
      }
    }
  }
  acc = reduce_row<kBlock>(
      acc, [](MaxSum a, MaxSum b) { return combine(a, b, 1.0f); }, MaxSum{-INFINITY, 0.0f});
  if (smoothing > 0.0f) {
    weighted_logits = row_sum<kBlock>(weighted_logits);
    weights = row_sum<kBlock>(weights);
  }
  if (slot.tid != 0) return;
  // A NaN logit makes the sum NaN; a row of all -inf has max -inf and a NaN lse
  // after (-inf) + log(0): both give a NaN loss, which the op reports.
  const float l = acc.max + logf(acc.sum);
  const float nll = (weight ? weight[y] : 1.0f) * (l - z[y]);
  const float smooth = l * weights - weighted_logits;
  lse[slot.row] = l;
  row_loss[slot.row] = smoothing > 0.0f
                           ? (1.0f - smoothing) * nll + smoothing / static_cast<float>(C) * smooth
                           : nll;
}

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
  launch_rows<ForwardLaunch>(B, C, float4_rows(C, {logits}), row_loss, lse, logits, targets, weight,
                             B, C, ignore_index, smoothing);
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
// cancellation when the logits are large and the loss small.
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
  for (int64_t k = slot.tid; k < C / kWidth; k += slot.threads) {
    const Floats<kWidth> v = Floats<kWidth>::load(z + k * kWidth);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) add_element(acc, v.v[i], 1.0f);
  }
  acc = reduce_row<kBlock>(
      acc, [](MaxSum a, MaxSum b) { return combine(a, b, 1.0f); }, MaxSum{-INFINITY, 0.0f});
  // A NaN logit makes the sum NaN, and a row of all -inf has a NaN sum (exp of
  // -inf - -inf): either way the loss is NaN, which the op reports.
  const float l = acc.max + logf(acc.sum);
  const float keep = 1.0f - smoothing, spread = smoothing / static_cast<float>(C);
  float sum = 0.0f, mass = 0.0f;
  for (int64_t k = slot.tid; k < C / kWidth; k += slot.threads) {
    const Floats<kWidth> zv = Floats<kWidth>::load(z + k * kWidth);
    const Floats<kWidth> tv = Floats<kWidth>::load(t + k * kWidth);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) {
      const float wt = (weight ? weight[k * kWidth + i] : 1.0f) * (keep * tv.v[i] + spread);
      sum += wt * (l - zv.v[i]);
      mass += wt;
    }
  }
  sum = row_sum<kBlock>(sum);
  mass = row_sum<kBlock>(mass);
  if (slot.tid != 0) return;
  row_loss[slot.row] = sum;
  lse[slot.row] = l;
  target_mass[slot.row] = mass;
}

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
  launch_rows<SoftForwardLaunch>(B, C, float4_rows(C, {logits, targets}), row_loss, lse,
                                 target_mass, logits, targets, weight, B, C, smoothing);
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
