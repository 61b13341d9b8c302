// Sampled softmax and NCE on a GPU: the kernels of sampled_softmax.cpp's ops
// (the derivation is at the top of that file). The sampled columns' logits and
// two of their gradients are cuBLAS products, as on the CPU; the rest are these
// kernels:
//   true_logits      one warp per (row, true class): z_bt = h_b . w_y + b_y - log Q
//   adjust_sampled   bias, log Q and accidental hits on the GEMM's columns
//   row losses       one block per row (lse by a max and a sum, or NCE's sum)
//   dlogits          one thread per logit
//   true gradients   dh_b += sum_t dz_bt w_y (a thread per (b, k)), and
//                    dw_y += dz_bt h_b, db_y += dz_bt by atomicAdd (classes repeat)
//   sampled bias     db_id += sum_b dz_bs: one block per sampled column
#include <cfloat>

#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

constexpr int kThreads = 256;
constexpr float kAccidentalHitLogit = -FLT_MAX;  // as sampled_softmax.h

__global__ void true_logits_kernel(float* logits, const float* weight, const float* bias,
                                   const float* hidden, const int64_t* labels,
                                   const float* true_log_q, int64_t BT, int64_t T, int64_t N,
                                   int64_t d) {
  BRIDLE_GRID_WARP_LOOP(pair, BT) {
    const int64_t b = pair / T, t = pair % T, y = labels[pair];
    float dot = warp_dot(hidden + b * d, weight + y * d, d);
    if (threadIdx.x % kWarpSize == 0) {
      if (bias) dot += bias[y];
      if (true_log_q) dot -= true_log_q[pair];
      logits[b * N + t] = dot;
    }
  }
}

__global__ void adjust_sampled_kernel(float* logits, const float* bias, const int64_t* labels,
                                      const int64_t* ids, const float* sampled_log_q,
                                      bool remove_accidental_hits, int64_t B, int64_t T,
                                      int64_t S) {
  const int64_t N = T + S;
  BRIDLE_GRID_STRIDE_LOOP(e, B * S) {
    const int64_t b = e / S, s = e % S, id = ids[s];
    float& z = logits[b * N + T + s];
    bool hit = false;
    if (remove_accidental_hits)
      for (int64_t t = 0; t < T; ++t) hit |= labels[b * T + t] == id;
    if (hit) {
      z = kAccidentalHitLogit;
    } else {
      if (bias) z += bias[id];
      if (sampled_log_q) z -= sampled_log_q[s];
    }
  }
}

__global__ void sampled_softmax_rows_kernel(float* loss, float* lse, const float* logits, int64_t T,
                                            int64_t N) {
  const float* z = logits + blockIdx.x * N;
  float max = -INFINITY;
  for (int64_t j = threadIdx.x; j < N; j += blockDim.x) max = fmaxf(max, z[j]);
  max = block_reduce(
            Float{max}, [](Float a, Float b) { return Float{fmaxf(a.v, b.v)}; }, Float{-INFINITY})
            .v;
  float sum = 0.0f, true_sum = 0.0f;
  for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
    sum += expf(z[j] - max);
    if (j < T) true_sum += z[j];
  }
  sum = block_sum(sum);
  true_sum = block_sum(true_sum);
  if (threadIdx.x == 0) {
    const float l = max + logf(sum);  // NaN or inf in the row: NaN, which the op reports
    lse[blockIdx.x] = l;
    loss[blockIdx.x] = l - true_sum / static_cast<float>(T);
  }
}

// max(z, 0) - l z + log(1 + e^-|z|): exactly 0 at kAccidentalHitLogit with l = 0.
__device__ float sigmoid_ce(float z, float l) {
  return fmaxf(z, 0.0f) - l * z + log1pf(expf(-fabsf(z)));
}

__global__ void nce_rows_kernel(float* loss, const float* logits, float true_label, int64_t T,
                                int64_t N) {
  const float* z = logits + blockIdx.x * N;
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < N; j += blockDim.x)
    sum += sigmoid_ce(z[j], j < T ? true_label : 0.0f);
  sum = block_sum(sum);
  if (threadIdx.x == 0) loss[blockIdx.x] = sum;
}

__global__ void dlogits_kernel(float* dlogits, const float* logits, const float* lse, bool nce,
                               float true_label, const float* dout, float scale, bool per_row,
                               int64_t B, int64_t T, int64_t N) {
  const float inv_T = 1.0f / static_cast<float>(T);
  BRIDLE_GRID_STRIDE_LOOP(e, B * N) {
    const int64_t b = e / N, j = e % N;
    const float g = per_row ? dout[b] : dout[0] * scale;
    const float z = logits[e];
    // A removed hit: exp(-FLT_MAX - lse) = 0 and sigmoid(-FLT_MAX) = 0, label 0.
    dlogits[e] = nce ? g * (1.0f / (1.0f + expf(-z)) - (j < T ? true_label : 0.0f))
                     : g * (expf(z - lse[b]) - (j < T ? inv_T : 0.0f));
  }
}

__global__ void true_dhidden_kernel(float* dhidden, const float* dlogits, const float* weight,
                                    const int64_t* labels, int64_t B, int64_t T, int64_t N,
                                    int64_t d) {
  BRIDLE_GRID_STRIDE_LOOP(e, B * d) {
    const int64_t b = e / d, k = e % d;
    float sum = 0.0f;
    for (int64_t t = 0; t < T; ++t) sum += dlogits[b * N + t] * weight[labels[b * T + t] * d + k];
    dhidden[e] += sum;
  }
}

__global__ void true_dweight_kernel(float* dweight, float* dbias, const float* dlogits,
                                    const float* hidden, const int64_t* labels, int64_t T,
                                    int64_t N, int64_t d, int64_t total) {
  BRIDLE_GRID_STRIDE_LOOP(e, total) {  // e = (b * T + t) * d + k
    const int64_t pair = e / d, k = e % d, b = pair / T, t = pair % T;
    const float dz = dlogits[b * N + t];
    if (dweight) atomicAdd(dweight + labels[pair] * d + k, dz * hidden[b * d + k]);
    if (dbias && k == 0) atomicAdd(dbias + labels[pair], dz);
  }
}

__global__ void sampled_dbias_kernel(float* dbias, const float* dlogits, const int64_t* ids,
                                     int64_t B, int64_t T, int64_t N) {
  const int64_t s = blockIdx.x;
  float sum = 0.0f;
  for (int64_t b = threadIdx.x; b < B; b += blockDim.x) sum += dlogits[b * N + T + s];
  sum = block_sum(sum);
  if (threadIdx.x == 0) atomicAdd(dbias + ids[s], sum);  // an id may be sampled twice
}

}  // namespace

void sampled_logits(float* logits, float* gathered, const float* weight, const float* bias,
                    const float* hidden, const int64_t* labels, const int64_t* ids,
                    const float* true_log_q, const float* sampled_log_q,
                    bool remove_accidental_hits, int64_t V, int64_t B, int64_t T, int64_t S,
                    int64_t d) {
  if (B == 0) return;
  const int64_t N = T + S;
  index_select_forward(gathered, weight, ids, 1, V, S, d);
  // Columns T.. of every row: hidden x gathered^T, written in place (ldc = N).
  gemm(false, true, B, S, d, 1.0f, hidden, d, gathered, d, 0.0f, logits + T, N);
  const int64_t warps = B * T;
  true_logits_kernel<<<blocks_for(warps * kWarpSize, kThreads), kThreads, 0, stream()>>>(
      logits, weight, bias, hidden, labels, true_log_q, warps, T, N, d);
  BRIDLE_CUDA_CHECK_LAUNCH("true_logits_kernel");
  adjust_sampled_kernel<<<blocks_for(B * S, kThreads), kThreads, 0, stream()>>>(
      logits, bias, labels, ids, sampled_log_q, remove_accidental_hits, B, T, S);
  BRIDLE_CUDA_CHECK_LAUNCH("adjust_sampled_kernel");
}

void sampled_softmax_rows(float* loss, float* lse, const float* logits, int64_t B, int64_t T,
                          int64_t S) {
  if (B == 0) return;
  sampled_softmax_rows_kernel<<<static_cast<unsigned>(B), kThreads, 0, stream()>>>(
      loss, lse, logits, T, T + S);
  BRIDLE_CUDA_CHECK_LAUNCH("sampled_softmax_rows_kernel");
}

void nce_rows(float* loss, const float* logits, float true_label, int64_t B, int64_t T, int64_t S) {
  if (B == 0) return;
  nce_rows_kernel<<<static_cast<unsigned>(B), kThreads, 0, stream()>>>(loss, logits, true_label, T,
                                                                       T + S);
  BRIDLE_CUDA_CHECK_LAUNCH("nce_rows_kernel");
}

void sampled_dlogits(float* dlogits, const float* logits, const float* lse, bool nce,
                     float true_label, const float* dout, float scale, bool per_row, int64_t B,
                     int64_t T, int64_t S) {
  if (B == 0) return;
  dlogits_kernel<<<blocks_for(B * (T + S), kThreads), kThreads, 0, stream()>>>(
      dlogits, logits, lse, nce, true_label, dout, scale, per_row, B, T, T + S);
  BRIDLE_CUDA_CHECK_LAUNCH("dlogits_kernel");
}

void sampled_logits_backward(float* dhidden, float* dweight, float* dbias, const float* dlogits,
                             const float* gathered, float* scratch, const float* weight,
                             const float* hidden, const int64_t* labels, const int64_t* ids,
                             int64_t V, int64_t B, int64_t T, int64_t S, int64_t d) {
  if (B == 0) return;
  const int64_t N = T + S;
  const float* dz_sampled = dlogits + T;  // [B, S] with row stride N
  if (dhidden) {
    gemm(false, false, B, d, S, 1.0f, dz_sampled, N, gathered, d, 1.0f, dhidden, d);
    true_dhidden_kernel<<<blocks_for(B * d, kThreads), kThreads, 0, stream()>>>(
        dhidden, dlogits, weight, labels, B, T, N, d);
    BRIDLE_CUDA_CHECK_LAUNCH("true_dhidden_kernel");
  }
  if (dweight) {  // the sampled rows' gradient, dz_s^T hidden, then added at their ids
    gemm(true, false, S, d, B, 1.0f, dz_sampled, N, hidden, d, 0.0f, scratch, d);
    index_select_backward(dweight, scratch, ids, 1, V, S, d, /*accumulate=*/true);
  }
  if (dweight || dbias) {
    true_dweight_kernel<<<blocks_for(B * T * d, kThreads), kThreads, 0, stream()>>>(
        dweight, dbias, dlogits, hidden, labels, T, N, d, B * T * d);
    BRIDLE_CUDA_CHECK_LAUNCH("true_dweight_kernel");
  }
  if (dbias) {
    sampled_dbias_kernel<<<static_cast<unsigned>(S), kThreads, 0, stream()>>>(dbias, dlogits, ids,
                                                                              B, T, N);
    BRIDLE_CUDA_CHECK_LAUNCH("sampled_dbias_kernel");
  }
}

}  // namespace bridle::cuda
