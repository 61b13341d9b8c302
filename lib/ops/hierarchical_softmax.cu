// The Huffman-tree loss on a GPU (hierarchical_softmax_loss; the derivation is
// at the top of hierarchical_softmax.cpp). The op builds the batch's paths on
// the host (cpu::make_path_batch) and copies them over; then
//   steps          one warp per path step i: s_i = h_b . w_n + bias_n,
//                  step_loss_i = softplus(-sign_i s_i), coef_i = -sign_i sigma(-sign_i s_i)
//   row losses     one thread per row: its steps' losses, summed in order
//   dhidden        one thread per (b, k): sum over b's steps of g_i w_{n_i, k}
//   dnode_weight   one thread per (touched node u, k): sum over u's steps of g_i h_{row_i, k}
//   dnode_bias     one thread per touched node
// with g_i = coef_i dloss_{row_i}. Every gradient element has one thread that
// sums in a fixed order: no atomics, and the same bits on every run.
//
// The two-level tree's within-cluster softmax (within_cluster_nll) the same way,
// from the op's cpu::ClusterBatch: a warp per logit slot (h_b . W_j + b_j), a
// warp per row for its logsumexp, a thread per slot for dlogits, per (b, k) for
// dhidden, and per (class, k) for dW and per class for db (each class of a
// cluster in use is one work item of the batch, so again one writer each).
//
// The exact log-probabilities of every class (the log_prob ops, which topk on a
// GPU also uses), from scores the op computes with gemm:
//   Huffman        one thread per (b, c): c's path, root first, summed in the
//                  CPU's order; the backward is the CPU's two passes over the
//                  nodes (subtree totals of dout, then each node's derivative),
//                  one thread per row
//   class tree     a warp per row for the clusters' logsumexp, a thread per
//                  (b, cluster) for the cluster's own logsumexp and its classes,
//                  and in the backward for the cluster's sum of dout
#include "core/cuda/cuda_check.h"
#include "core/cuda/device_utils.cuh"
#include "ops/cuda_kernels.h"

namespace bridle::cuda {
namespace {

constexpr int kThreads = 256;

// log(1 + e^x) without overflow.
__device__ float softplus(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }

// 1 / (1 + e^-x) without overflow.
__device__ float stable_sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  const float e = expf(x);
  return e / (1.0f + e);
}

__device__ float row_gradient(const float* dout, float scale, bool per_row, int64_t b) {
  return per_row ? dout[b] : dout[0] * scale;
}

__global__ void steps_kernel(float* step_loss, float* coef, const float* hidden,
                             const float* node_weight, const float* node_bias, DevicePaths p,
                             int64_t d) {
  BRIDLE_GRID_WARP_LOOP(i, p.S) {
    const int64_t n = p.nodes[i];
    float s = warp_dot(hidden + p.row_of[i] * d, node_weight + n * d, d);
    if (threadIdx.x % kWarpSize == 0) {
      if (node_bias) s += node_bias[n];
      const float z = p.signs[i] * s;
      step_loss[i] = softplus(-z);
      coef[i] = -p.signs[i] * stable_sigmoid(-z);
    }
  }
}

__global__ void row_loss_kernel(float* loss, const float* step_loss, DevicePaths p) {
  BRIDLE_GRID_STRIDE_LOOP(b, p.B) {
    float total = 0.0f;
    for (int64_t i = p.offsets[b]; i < p.offsets[b + 1]; ++i) total += step_loss[i];
    loss[b] = total;
  }
}

__global__ void dhidden_kernel(float* dhidden, const float* node_weight, const float* coef,
                               const float* dout, float scale, bool per_row, DevicePaths p,
                               int64_t d) {
  BRIDLE_GRID_STRIDE_LOOP(e, p.B * d) {
    const int64_t b = e / d, k = e % d;
    float sum = 0.0f;
    for (int64_t i = p.offsets[b]; i < p.offsets[b + 1]; ++i)
      sum += coef[i] * node_weight[p.nodes[i] * d + k];
    dhidden[e] += sum * row_gradient(dout, scale, per_row, b);
  }
}

__global__ void dnode_weight_kernel(float* dnode_weight, const float* hidden, const float* coef,
                                    const float* dout, float scale, bool per_row, DevicePaths p,
                                    int64_t d) {
  BRIDLE_GRID_STRIDE_LOOP(e, p.U * d) {
    const int64_t u = e / d, k = e % d;
    float sum = 0.0f;
    for (int64_t j = p.node_offsets[u]; j < p.node_offsets[u + 1]; ++j) {
      const int64_t i = p.by_node[j], b = p.row_of[i];
      sum += coef[i] * row_gradient(dout, scale, per_row, b) * hidden[b * d + k];
    }
    dnode_weight[p.touched[u] * d + k] += sum;
  }
}

__global__ void dnode_bias_kernel(float* dnode_bias, const float* coef, const float* dout,
                                  float scale, bool per_row, DevicePaths p) {
  BRIDLE_GRID_STRIDE_LOOP(u, p.U) {
    float sum = 0.0f;
    for (int64_t j = p.node_offsets[u]; j < p.node_offsets[u + 1]; ++j) {
      const int64_t i = p.by_node[j];
      sum += coef[i] * row_gradient(dout, scale, per_row, p.row_of[i]);
    }
    dnode_bias[p.touched[u]] += sum;
  }
}

__global__ void cluster_logits_kernel(float* logits, const float* hidden, const float* class_weight,
                                      const float* class_bias, DeviceClusters c, int64_t d) {
  BRIDLE_GRID_WARP_LOOP(i, c.Z) {
    const int64_t j = c.classes[i];
    const float s = warp_dot(hidden + c.row_of[i] * d, class_weight + j * d, d);
    if (threadIdx.x % kWarpSize == 0) logits[i] = s + (class_bias ? class_bias[j] : 0.0f);
  }
}

__global__ void cluster_rows_kernel(float* nll, float* lse, const float* logits, DeviceClusters c) {
  const int lane = threadIdx.x % kWarpSize;
  BRIDLE_GRID_WARP_LOOP(b, c.B) {
    const float* z = logits + c.offsets[b];
    const int64_t size = c.offsets[b + 1] - c.offsets[b];
    float max = -INFINITY;
    for (int64_t i = lane; i < size; i += kWarpSize) max = fmaxf(max, z[i]);
    max = warp_reduce(Float{max}, [](Float x, Float y) { return Float{fmaxf(x.v, y.v)}; }).v;
    float sum = 0.0f;
    for (int64_t i = lane; i < size; i += kWarpSize) sum += expf(z[i] - max);
    sum = warp_sum(sum);
    if (lane == 0) {
      const float l = max + logf(sum);  // NaN in the row: NaN, which the op reports
      lse[b] = l;
      nll[b] = l - z[c.target_pos[b]];
    }
  }
}

__global__ void cluster_dlogits_kernel(float* dlogits, const float* logits, const float* lse,
                                       const float* dout, DeviceClusters c) {
  BRIDLE_GRID_STRIDE_LOOP(i, c.Z) {
    const int64_t b = c.row_of[i];
    const float g = dout[b];
    dlogits[i] =
        g * (expf(logits[i] - lse[b]) - (i == c.offsets[b] + c.target_pos[b] ? 1.0f : 0.0f));
  }
}

__global__ void cluster_dhidden_kernel(float* dhidden, const float* class_weight,
                                       const float* dlogits, DeviceClusters c, int64_t d) {
  BRIDLE_GRID_STRIDE_LOOP(e, c.B * d) {
    const int64_t b = e / d, k = e % d;
    float sum = 0.0f;
    for (int64_t i = c.offsets[b]; i < c.offsets[b + 1]; ++i)
      sum += dlogits[i] * class_weight[c.classes[i] * d + k];
    dhidden[e] += sum;
  }
}

// Work item w: class work_class[w], the work_member[w]-th of its cluster, whose
// rows in the batch are group work_group[w].
__global__ void cluster_dweight_kernel(float* dclass_weight, float* dclass_bias,
                                       const float* hidden, const float* dlogits, DeviceClusters c,
                                       int64_t d) {
  const int64_t columns = dclass_weight ? d : 1;
  BRIDLE_GRID_STRIDE_LOOP(e, c.W * columns) {
    const int64_t w = e / columns, k = e % columns, u = c.work_group[w], i = c.work_member[w];
    float sum = 0.0f, bias_sum = 0.0f;
    for (int64_t r = c.group_offsets[u]; r < c.group_offsets[u + 1]; ++r) {
      const int64_t b = c.group_rows[r];
      const float g = dlogits[c.offsets[b] + i];
      if (dclass_weight) sum += g * hidden[b * d + k];
      bias_sum += g;
    }
    if (dclass_weight) dclass_weight[c.work_class[w] * d + k] += sum;
    if (dclass_bias && k == 0) dclass_bias[c.work_class[w]] += bias_sum;
  }
}

// --- Every class's log-probability ------------------------------------------------------

__global__ void huffman_log_prob_kernel(float* out, const float* scores, const int64_t* offsets,
                                        const int64_t* points, const int64_t* codes, int64_t V,
                                        int64_t total) {
  const int64_t N = V - 1;
  BRIDLE_GRID_STRIDE_LOOP(e, total) {
    const int64_t b = e / V, c = e % V;
    const float* s = scores + b * N;
    float log_p = 0.0f;
    for (int64_t i = offsets[c]; i < offsets[c + 1]; ++i) {
      const float x = s[points[i]];
      const float log_sig = -softplus(-x);                       // log sigma(x)
      log_p = codes[i] ? log_p + log_sig - x : log_p + log_sig;  // log sigma(-x) = log sigma(x) - x
    }
    out[e] = log_p;
  }
}

// d out_c / d s_n is 1 - sigma(s_n) for the classes below n's bit-0 child and
// -sigma(s_n) for those below its bit-1 child, so with T0, T1 their sums of
// dout: dscores_n = T0 - (T0 + T1) sigma(s_n). Children have smaller ids than
// their parent: the first pass (up) leaves each node's total T0 + T1 in
// dscores, the second (down from the root) replaces it while its children's
// totals are still there.
__global__ void huffman_log_prob_backward_kernel(float* dscores, const float* scores,
                                                 const float* dout, const int64_t* children,
                                                 int64_t B, int64_t V) {
  const int64_t N = V - 1;
  BRIDLE_GRID_STRIDE_LOOP(b, B) {
    float* t = dscores + b * N;
    const float* s = scores + b * N;
    const float* g = dout + b * V;
    auto total = [&](int64_t x) { return x < 0 ? g[~x] : t[x]; };
    for (int64_t n = 0; n < N; ++n) t[n] = total(children[2 * n]) + total(children[2 * n + 1]);
    for (int64_t n = N - 1; n >= 0; --n)
      t[n] = total(children[2 * n]) - t[n] / (1.0f + expf(-s[n]));
  }
}

// cluster_lse[b] = logsumexp(cluster_logits[b]), a warp per row.
__global__ void cluster_lse_kernel(float* cluster_lse, const float* cluster_logits, int64_t B,
                                   int64_t K) {
  const int lane = threadIdx.x % kWarpSize;
  BRIDLE_GRID_WARP_LOOP(b, B) {
    const float* u = cluster_logits + b * K;
    float max = -INFINITY;
    for (int64_t k = lane; k < K; k += kWarpSize) max = fmaxf(max, u[k]);
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
      max = fmaxf(max, __shfl_xor_sync(kFullMask, max, offset));
    float sum = 0.0f;
    for (int64_t k = lane; k < K; k += kWarpSize) sum += expf(u[k] - max);
    sum = warp_sum(sum);  // NaN when a logit is NaN, as the CPU's row
    if (lane == 0) cluster_lse[b] = max + logf(sum);
  }
}

// A thread per (b, k): cluster k's logsumexp over its classes and their
// log-probabilities z_c + (u_k - L) - l_k.
__global__ void class_log_prob_kernel(float* out, float* within_lse, const float* cluster_lse,
                                      const float* class_logits, const float* cluster_logits,
                                      const int64_t* offsets, const int64_t* members, int64_t V,
                                      int64_t K, int64_t total) {
  BRIDLE_GRID_STRIDE_LOOP(e, total) {
    const int64_t b = e / K, k = e % K;
    const float* z = class_logits + b * V;
    float max = -INFINITY;
    for (int64_t m = offsets[k]; m < offsets[k + 1]; ++m) max = fmaxf(max, z[members[m]]);
    float sum = 0.0f;
    for (int64_t m = offsets[k]; m < offsets[k + 1]; ++m) sum += expf(z[members[m]] - max);
    const float l = max + logf(sum), shift = cluster_logits[e] - cluster_lse[b] - l;
    within_lse[e] = l;
    for (int64_t m = offsets[k]; m < offsets[k + 1]; ++m)
      out[b * V + members[m]] = z[members[m]] + shift;
  }
}

// With S_k = the sum of dout over cluster k's classes:
//   dz_c += dout_c - exp(z_c - l_k) S_k,   du_k += S_k - exp(u_k - L) sum_k' S_k'.
__global__ void class_log_prob_backward_kernel(float* dclass_logits, float* cluster_sums,
                                               const float* class_logits, const float* within_lse,
                                               const float* dout, const int64_t* offsets,
                                               const int64_t* members, int64_t V, int64_t K,
                                               int64_t total) {
  BRIDLE_GRID_STRIDE_LOOP(e, total) {
    const int64_t b = e / K, k = e % K;
    const float* g = dout + b * V;
    float S = 0.0f;
    for (int64_t m = offsets[k]; m < offsets[k + 1]; ++m) S += g[members[m]];
    cluster_sums[e] = S;
    if (!dclass_logits) continue;
    const float* z = class_logits + b * V;
    float* dz = dclass_logits + b * V;
    const float l = within_lse[e];
    for (int64_t m = offsets[k]; m < offsets[k + 1]; ++m) {
      const int64_t c = members[m];
      dz[c] += g[c] - expf(z[c] - l) * S;
    }
  }
}

__global__ void cluster_log_prob_backward_kernel(float* dcluster_logits, const float* cluster_sums,
                                                 const float* cluster_logits,
                                                 const float* cluster_lse, int64_t K,
                                                 int64_t total) {
  BRIDLE_GRID_STRIDE_LOOP(e, total) {
    const int64_t b = e / K;
    float all = 0.0f;  // sum_k S_k, in the CPU's order
    for (int64_t k = 0; k < K; ++k) all += cluster_sums[b * K + k];
    float du = dcluster_logits[e] + cluster_sums[e];
    du -= expf(cluster_logits[e] - cluster_lse[b]) * all;
    dcluster_logits[e] = du;
  }
}

}  // namespace

void huffman_loss_forward(float* loss, float* coef, float* step_loss, const float* hidden,
                          const float* node_weight, const float* node_bias, const DevicePaths& p,
                          int64_t d) {
  if (p.B == 0) return;
  if (p.S > 0) {
    steps_kernel<<<blocks_for(p.S * kWarpSize, kThreads), kThreads, 0, stream()>>>(
        step_loss, coef, hidden, node_weight, node_bias, p, d);
    BRIDLE_CUDA_CHECK_LAUNCH("steps_kernel");
  }
  row_loss_kernel<<<blocks_for(p.B, kThreads), kThreads, 0, stream()>>>(loss, step_loss, p);
  BRIDLE_CUDA_CHECK_LAUNCH("row_loss_kernel");
}

void huffman_loss_backward(float* dhidden, float* dnode_weight, float* dnode_bias,
                           const float* hidden, const float* node_weight, const float* coef,
                           const float* dout, float scale, bool per_row, const DevicePaths& p,
                           int64_t d) {
  if (p.S == 0) return;  // no steps (V = 1): no gradient
  if (dhidden && d > 0) {
    dhidden_kernel<<<blocks_for(p.B * d, kThreads), kThreads, 0, stream()>>>(
        dhidden, node_weight, coef, dout, scale, per_row, p, d);
    BRIDLE_CUDA_CHECK_LAUNCH("dhidden_kernel");
  }
  if (dnode_weight && d > 0) {
    dnode_weight_kernel<<<blocks_for(p.U * d, kThreads), kThreads, 0, stream()>>>(
        dnode_weight, hidden, coef, dout, scale, per_row, p, d);
    BRIDLE_CUDA_CHECK_LAUNCH("dnode_weight_kernel");
  }
  if (dnode_bias) {
    dnode_bias_kernel<<<blocks_for(p.U, kThreads), kThreads, 0, stream()>>>(dnode_bias, coef, dout,
                                                                            scale, per_row, p);
    BRIDLE_CUDA_CHECK_LAUNCH("dnode_bias_kernel");
  }
}

void within_cluster_forward(float* nll, float* lse, float* logits, const float* hidden,
                            const float* class_weight, const float* class_bias,
                            const DeviceClusters& c, int64_t d) {
  if (c.B == 0) return;
  cluster_logits_kernel<<<blocks_for(c.Z * kWarpSize, kThreads), kThreads, 0, stream()>>>(
      logits, hidden, class_weight, class_bias, c, d);
  BRIDLE_CUDA_CHECK_LAUNCH("cluster_logits_kernel");
  cluster_rows_kernel<<<blocks_for(c.B * kWarpSize, kThreads), kThreads, 0, stream()>>>(nll, lse,
                                                                                        logits, c);
  BRIDLE_CUDA_CHECK_LAUNCH("cluster_rows_kernel");
}

void within_cluster_backward(float* dhidden, float* dclass_weight, float* dclass_bias,
                             float* dlogits, const float* logits, const float* lse,
                             const float* dout, const float* hidden, const float* class_weight,
                             const DeviceClusters& c, int64_t d) {
  if (c.B == 0) return;
  cluster_dlogits_kernel<<<blocks_for(c.Z, kThreads), kThreads, 0, stream()>>>(dlogits, logits, lse,
                                                                               dout, c);
  BRIDLE_CUDA_CHECK_LAUNCH("cluster_dlogits_kernel");
  if (dhidden && d > 0) {
    cluster_dhidden_kernel<<<blocks_for(c.B * d, kThreads), kThreads, 0, stream()>>>(
        dhidden, class_weight, dlogits, c, d);
    BRIDLE_CUDA_CHECK_LAUNCH("cluster_dhidden_kernel");
  }
  if ((dclass_weight && d > 0) || dclass_bias) {
    const int64_t columns = dclass_weight && d > 0 ? d : 1;
    cluster_dweight_kernel<<<blocks_for(c.W * columns, kThreads), kThreads, 0, stream()>>>(
        d > 0 ? dclass_weight : nullptr, dclass_bias, hidden, dlogits, c, d);
    BRIDLE_CUDA_CHECK_LAUNCH("cluster_dweight_kernel");
  }
}

void huffman_log_prob_forward(float* out, const float* scores, const int64_t* offsets,
                              const int64_t* points, const int64_t* codes, int64_t B, int64_t V) {
  const int64_t total = B * V;
  if (total == 0) return;
  huffman_log_prob_kernel<<<blocks_for(total, kThreads), kThreads, 0, stream()>>>(
      out, scores, offsets, points, codes, V, total);
  BRIDLE_CUDA_CHECK_LAUNCH("huffman_log_prob_kernel");
}

void huffman_log_prob_backward(float* dscores, const float* scores, const float* dout,
                               const int64_t* children, int64_t B, int64_t V) {
  if (B == 0 || V < 2) return;
  huffman_log_prob_backward_kernel<<<blocks_for(B, kThreads), kThreads, 0, stream()>>>(
      dscores, scores, dout, children, B, V);
  BRIDLE_CUDA_CHECK_LAUNCH("huffman_log_prob_backward_kernel");
}

void class_log_prob_forward(float* out, float* within_lse, float* cluster_lse,
                            const float* class_logits, const float* cluster_logits,
                            const int64_t* offsets, const int64_t* members, int64_t B, int64_t V,
                            int64_t K) {
  if (B * K == 0) return;
  cluster_lse_kernel<<<blocks_for(B * kWarpSize, kThreads), kThreads, 0, stream()>>>(
      cluster_lse, cluster_logits, B, K);
  BRIDLE_CUDA_CHECK_LAUNCH("cluster_lse_kernel");
  class_log_prob_kernel<<<blocks_for(B * K, kThreads), kThreads, 0, stream()>>>(
      out, within_lse, cluster_lse, class_logits, cluster_logits, offsets, members, V, K, B * K);
  BRIDLE_CUDA_CHECK_LAUNCH("class_log_prob_kernel");
}

void class_log_prob_backward(float* dclass_logits, float* dcluster_logits, float* cluster_sums,
                             const float* class_logits, const float* cluster_logits,
                             const float* within_lse, const float* cluster_lse, const float* dout,
                             const int64_t* offsets, const int64_t* members, int64_t B, int64_t V,
                             int64_t K) {
  if (B * K == 0) return;
  class_log_prob_backward_kernel<<<blocks_for(B * K, kThreads), kThreads, 0, stream()>>>(
      dclass_logits, cluster_sums, class_logits, within_lse, dout, offsets, members, V, K, B * K);
  BRIDLE_CUDA_CHECK_LAUNCH("class_log_prob_backward_kernel");
  if (!dcluster_logits) return;
  cluster_log_prob_backward_kernel<<<blocks_for(B * K, kThreads), kThreads, 0, stream()>>>(
      dcluster_logits, cluster_sums, cluster_logits, cluster_lse, K, B * K);
  BRIDLE_CUDA_CHECK_LAUNCH("cluster_log_prob_backward_kernel");
}

}  // namespace bridle::cuda
