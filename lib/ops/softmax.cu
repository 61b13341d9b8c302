// softmax and log_softmax: the CUDA kernels (the ops and the CPU kernels are in
// softmax.cpp, the formulas and the backward derivations at its top).
//
// Contiguous rows (the softmax dim is the last one): a row is read twice, once
// for its max and sum, once to write the output.
//   - The first pass is online: max and sum in one read (online_softmax.cuh).
//   - Rows of up to kWarpRowMax elements get one warp each (no shared memory,
//     no __syncthreads, four rows per block); longer rows get a block each.
//   - Rows whose every start is 16-byte aligned (n a multiple of 4) are read and
//     written as float4: a quarter of the memory instructions.
// Rows with no finite maximum (all -inf, or a +inf or NaN) have no softmax; the
// kernel still writes them and reports the first through `first_bad_row`, and
// the op throws as the CPU one does.
//
// Strided rows (another dim): one thread per row walks it with stride `inner`,
// in three plain passes. Simple rather than fast: such softmaxes are rare.
#include <cmath>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"
#include "ops/online_softmax.cuh"

namespace bridle::cuda {
namespace {

template <bool kBlock, int kWidth>
__global__ void softmax_forward_kernel(float* __restrict__ out, const float* __restrict__ inp,
                                       int64_t rows, int64_t n, float inv_temp, bool log,
                                       unsigned long long* first_bad_row) {
  const RowSlot<kBlock> slot;
  if (slot.row >= rows) return;  // a whole warp at once: rows are warp-uniform
  const float* x = inp + slot.row * n;
  float* y = out + slot.row * n;

  MaxSum acc{-INFINITY, 0.0f};
  bool has_nan = false;
  for (int64_t k = slot.tid; k < n / kWidth; k += slot.threads) {
    const Floats<kWidth> v = Floats<kWidth>::load(x + k * kWidth);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) {
      add_element(acc, v.v[i], inv_temp);
      has_nan |= isnan(v.v[i]);
    }
  }
  auto combine_op = [inv_temp](MaxSum a, MaxSum b) { return combine(a, b, inv_temp); };
  acc = reduce_row<kBlock>(acc, combine_op, MaxSum{-INFINITY, 0.0f});
  has_nan = row_any<kBlock>(has_nan);
  if ((has_nan || !isfinite(acc.max)) && slot.tid == 0)
    atomicMin(first_bad_row, static_cast<unsigned long long>(slot.row));

  const float max = acc.max, inv_sum = 1.0f / acc.sum, log_sum = logf(acc.sum);
  for (int64_t k = slot.tid; k < n / kWidth; k += slot.threads) {
    Floats<kWidth> v = Floats<kWidth>::load(x + k * kWidth);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) {
      const float z = (v.v[i] - max) * inv_temp;
      v.v[i] = log ? z - log_sum : expf(z) * inv_sum;
    }
    v.store(y + k * kWidth);
  }
}

// softmax:     dx = y (g - sum_k g_k y_k) / T
// log_softmax: dx = (g - exp(y) sum_k g_k) / T
template <bool kBlock, int kWidth>
__global__ void softmax_backward_kernel(float* __restrict__ dinp, const float* __restrict__ out,
                                        const float* __restrict__ dout, int64_t rows, int64_t n,
                                        float inv_temp, bool log, bool accumulate) {
  const RowSlot<kBlock> slot;
  if (slot.row >= rows) return;
  const float* y = out + slot.row * n;
  const float* g = dout + slot.row * n;
  float* dx = dinp + slot.row * n;

  float acc = 0.0f;
  for (int64_t k = slot.tid; k < n / kWidth; k += slot.threads) {
    const Floats<kWidth> gv = Floats<kWidth>::load(g + k * kWidth);
    const Floats<kWidth> yv = Floats<kWidth>::load(y + k * kWidth);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) acc += log ? gv.v[i] : gv.v[i] * yv.v[i];
  }
  acc = row_sum<kBlock>(acc);

  for (int64_t k = slot.tid; k < n / kWidth; k += slot.threads) {
    const Floats<kWidth> gv = Floats<kWidth>::load(g + k * kWidth);
    const Floats<kWidth> yv = Floats<kWidth>::load(y + k * kWidth);
    Floats<kWidth> d = {};
    if (accumulate) d = Floats<kWidth>::load(dx + k * kWidth);
#pragma unroll
    for (int i = 0; i < kWidth; ++i) {
      const float grad = log ? gv.v[i] - expf(yv.v[i]) * acc : yv.v[i] * (gv.v[i] - acc);
      d.v[i] += grad * inv_temp;
    }
    d.store(dx + k * kWidth);
  }
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
  launch_rows<ForwardLaunch>(outer, n, float4_rows(n, {out, inp}), out, inp, outer, n, inv_temp,
                             log, first_bad_row);
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
  launch_rows<BackwardLaunch>(outer, n, float4_rows(n, {dinp, out, dout}), dinp, out, dout, outer,
                              n, inv_temp, log, accumulate);
  BRIDLE_CUDA_CHECK_LAUNCH("softmax_backward_kernel");
}

}  // namespace bridle::cuda
