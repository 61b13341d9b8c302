// The CUDA kernels of bridle's ops: declarations for the ops' .cpp files, each
// defined in the .cu beside the op (softmax.cu beside softmax.cpp, ...).
//
// Why one header instead of a `namespace cuda` in each op's header: the .cu
// files are compiled by nvcc, whose front end rejects fmt's compile-time format
// checks, and every op header pulls in fmt through core/tensor.h. This header
// includes nothing but <cstdint> and plain headers, so both compilers read it.
//
// Like the CPU kernels, these take device pointers and sizes and never allocate,
// check or record; they are queued on the current device's stream (the op sets
// the device with cuda::DeviceGuard) and return before the GPU has run them.
// Backward kernels accumulate (+=) unless an `accumulate` flag says they write.
#pragma once

#include <cstdint>

#include "optim/update_rules.h"  // plain C++, no fmt: nvcc reads it too

namespace bridle::cuda {

// --- softmax.cu: softmax, log_softmax --------------------------------------------
// Rows are [outer, n, inner] (op_utils.h). The forward writes every row, and the
// index of the first row with no finite maximum into *first_bad_row (device
// memory the caller set to outer * inner, "none") when it is smaller.
void softmax_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner,
                     float inv_temp, bool log, unsigned long long* first_bad_row);
void softmax_backward(float* dinp, const float* out, const float* dout, int64_t outer, int64_t n,
                      int64_t inner, float inv_temp, bool log, bool accumulate);
// safe_softmax: as softmax_forward (T = 1), except that a row of only -inf
// gives zeros and is not reported; a row with +inf or NaN still is. Its
// backward is softmax_backward (a zero row gets a zero gradient).
void safe_softmax_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner,
                          unsigned long long* first_bad_row);
// masked_softmax's keep-masks as additive ones: out = mask != 0 ? 0 : -inf.
void keep_mask_to_additive(float* out, const int32_t* mask, int64_t n);
void keep_mask_to_additive(float* out, const int64_t* mask, int64_t n);
// logsumexp along rows [outer, n, inner] (n > 0), as cpu::logsumexp_forward:
// out = m + log sum_k exp(x_k - m), m = max_k x_k, or m itself when infinite.
void logsumexp_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner);
// dx (+)= dout exp(x - out), and no gradient through a row whose out is infinite.
void logsumexp_backward(float* dinp, const float* inp, const float* out, const float* dout,
                        int64_t outer, int64_t n, int64_t inner, bool accumulate);

// --- cross_entropy.cu: fused softmax cross-entropy, class targets ------------------
// Per row b of logits [B, C]: lse[b] and row_loss[b] = (1 - eps) nll_b + eps / C
// smooth_b (cross_entropy.h has the formulas); rows whose target is ignore_index
// get 0 in both. weight: [C] or null (all 1).
void cross_entropy_forward(float* row_loss, float* lse, const float* logits, const int64_t* targets,
                           const float* weight, int64_t B, int64_t C, int64_t ignore_index,
                           float smoothing);
void cross_entropy_forward(float* row_loss, float* lse, const float* logits, const int32_t* targets,
                           const float* weight, int64_t B, int64_t C, int64_t ignore_index,
                           float smoothing);
// Row b's upstream gradient is dout[b] (per_row: reduction none) or
// dout[0] * dout_scale (mean, sum); total_weight = sum_c w_c (C without weights).
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const int64_t* targets, const float* weight, float total_weight,
                            const float* dout, float dout_scale, bool per_row, int64_t B, int64_t C,
                            int64_t ignore_index, float smoothing, bool accumulate);
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const int32_t* targets, const float* weight, float total_weight,
                            const float* dout, float dout_scale, bool per_row, int64_t B, int64_t C,
                            int64_t ignore_index, float smoothing, bool accumulate);
// Probability targets t [B, C] (cross_entropy_soft in cross_entropy.cpp): per row,
// lse[b], target_mass[b] = sum_c w_c t'_c and row_loss[b] = sum_c w_c t'_c (lse - z_c)
// with t' = (1 - eps) t + eps / C; weight: [C] or null.
void cross_entropy_soft_forward(float* row_loss, float* lse, float* target_mass,
                                const float* logits, const float* targets, const float* weight,
                                int64_t B, int64_t C, float smoothing);
// dz_j (+)= g_b (p_j target_mass_b - w_j t'_j), g_b as in cross_entropy_backward.
void cross_entropy_soft_backward(float* dlogits, const float* logits, const float* lse,
                                 const float* target_mass, const float* targets,
                                 const float* weight, const float* dout, float dout_scale,
                                 bool per_row, int64_t B, int64_t C, float smoothing,
                                 bool accumulate);
// nll_loss from log-probabilities [B, C]: row_loss[b] = -w_y log_probs[b, y] (0
// where y is ignore_index); weight: [C] or null.
void nll_loss_forward(float* row_loss, const float* log_probs, const int64_t* targets,
                      const float* weight, int64_t B, int64_t C, int64_t ignore_index);
void nll_loss_forward(float* row_loss, const float* log_probs, const int32_t* targets,
                      const float* weight, int64_t B, int64_t C, int64_t ignore_index);
// dlog_probs[b, y] -= w_y g_b, g_b as in cross_entropy_backward; accumulate = false
// first zeros dlog_probs.
void nll_loss_backward(float* dlog_probs, const int64_t* targets, const float* weight,
                       const float* dout, float dout_scale, bool per_row, int64_t B, int64_t C,
                       int64_t ignore_index, bool accumulate);
void nll_loss_backward(float* dlog_probs, const int32_t* targets, const float* weight,
                       const float* dout, float dout_scale, bool per_row, int64_t B, int64_t C,
                       int64_t ignore_index, bool accumulate);

// --- matmul.cu: cuBLAS products and the bias of linear -----------------------------
// Row-major, as cpu::gemm: C = alpha op(A) op(B) + beta C, op(A) [M, K], op(B) [K, N].
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// out[m, :] = bias for every row m.
void broadcast_rows(float* out, const float* bias, int64_t rows, int64_t cols);
// dbias[n] += sum_m dout[m, n].
void sum_rows_backward(float* dbias, const float* dout, int64_t rows, int64_t cols);

// --- elementwise.cu ----------------------------------------------------------------
enum class UnaryKind { kNeg, kExp, kLog, kSqrt, kRelu, kSigmoid, kTanh };
enum class BinaryKind { kAdd, kSub, kMul, kDiv, kPow };

// y = f(x); dx (+)= dy f'(x), f' from x or y as in elementwise.cpp.
void unary_forward(UnaryKind kind, float* out, const float* inp, int64_t n);
void unary_backward(UnaryKind kind, float* dinp, const float* inp, const float* out,
                    const float* dout, int64_t n, bool accumulate);

// How two inputs map onto their broadcast output: per output dim (at most
// kMaxDims), its size and each input's element stride (0 along a stretched dim).
constexpr int kMaxDims = 8;
struct BroadcastIndex {
  int rank = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride_a[kMaxDims] = {}, stride_b[kMaxDims] = {};
  bool same_shape = false;  // no broadcasting: flat loops
};
void binary_forward(BinaryKind kind, float* out, const float* a, const float* b,
                    const BroadcastIndex& index, int64_t n);
// da / db may be null (no gradient wanted). Broadcast inputs receive several
// outputs' gradients: those add atomically.
void binary_backward(BinaryKind kind, float* da, float* db, const float* a, const float* b,
                     const float* out, const float* dout, const BroadcastIndex& index, int64_t n);
// out = alpha x + beta; dst += alpha src.
void affine(float* out, const float* inp, float alpha, float beta, int64_t n);
void axpy(float* dst, const float* src, float alpha, int64_t n);
// out = x^p (x * x for p = 2, as the CPU); dx (+)= dy p x^(p - 1).
void pow_scalar_forward(float* out, const float* inp, float p, int64_t n);
void pow_scalar_backward(float* dinp, const float* inp, const float* dout, float p, int64_t n,
                         bool accumulate);

// --- reduce.cu ----------------------------------------------------------------------
// out[o, i] = scale sum_k inp[o, k, i];  dinp[o, k, i] += scale dout[o, i].
void sum_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner,
                 float scale);
void sum_backward(float* dinp, const float* dout, int64_t outer, int64_t n, int64_t inner,
                  float scale);
// index[o, i] = the first k with the largest inp[o, k, i] (NaN counts as largest).
void argmax(int64_t* index, const float* inp, int64_t outer, int64_t n, int64_t inner);
// The same index, and out[o, i] = inp[o, index[o, i], i].
void max_forward(float* out, int64_t* index, const float* inp, int64_t outer, int64_t n,
                 int64_t inner);
// dinp[o, index[o, i], i] += dout[o, i].
void max_backward(float* dinp, const int64_t* index, const float* dout, int64_t outer, int64_t n,
                  int64_t inner);

// --- indexing.cu: index_select, embedding, gather ---------------------------------------
// As the CPU kernels of indexing.h (Index is int32_t or int64_t; T of index_select
// is float, int32_t or int64_t); indices are already validated. The backwards
// add (atomically) unless accumulate is false, when they first zero dx.
template <typename T, typename Index>
void index_select_forward(T* out, const T* x, const Index* indices, int64_t outer, int64_t n,
                          int64_t K, int64_t inner);
template <typename Index>
void index_select_backward(float* dx, const float* dout, const Index* indices, int64_t outer,
                           int64_t n, int64_t K, int64_t inner, bool accumulate);
template <typename Index>
void gather_forward(float* out, const float* x, const Index* index, int64_t B, int64_t C,
                    int64_t k);
template <typename Index>
void gather_backward(float* dx, const float* dout, const Index* index, int64_t B, int64_t C,
                     int64_t k, bool accumulate);

// --- sampled_softmax.cu: sampled softmax and NCE (sampled_softmax.h) --------------------
// As the CPU kernels there: logits [B, N] (N = T + S) from weight [V, d], hidden
// [B, d] and the int64 labels [B * T] and sampled ids [S] (validated); bias,
// true_log_q [B * T] and sampled_log_q [S] may be null. gathered [S, d] receives
// weight's sampled rows, for the backward.
void sampled_logits(float* logits, float* gathered, const float* weight, const float* bias,
                    const float* hidden, const int64_t* labels, const int64_t* ids,
                    const float* true_log_q, const float* sampled_log_q,
                    bool remove_accidental_hits, int64_t V, int64_t B, int64_t T, int64_t S,
                    int64_t d);
// Per-row losses from the logits; the softmax also writes lse [B].
void sampled_softmax_rows(float* loss, float* lse, const float* logits, int64_t B, int64_t T,
                          int64_t S);
void nce_rows(float* loss, const float* logits, float true_label, int64_t B, int64_t T, int64_t S);
// d loss / d logits, written into [B, N]; row b's upstream gradient is dout[b]
// (per_row: reduction none) or dout[0] * scale. lse is read for the softmax only.
void sampled_dlogits(float* dlogits, const float* logits, const float* lse, bool nce,
                     float true_label, const float* dout, float scale, bool per_row, int64_t B,
                     int64_t T, int64_t S);
// Adds into dhidden [B, d], dweight [V, d] and dbias [V] (any may be null);
// scratch [S, d] is workspace.
void sampled_logits_backward(float* dhidden, float* dweight, float* dbias, const float* dlogits,
                             const float* gathered, float* scratch, const float* weight,
                             const float* hidden, const int64_t* labels, const int64_t* ids,
                             int64_t V, int64_t B, int64_t T, int64_t S, int64_t d);

// --- hierarchical_softmax.cu: the Huffman-tree loss (hierarchical_softmax.h) -------------
// A batch's paths (cpu::PathBatch) in device memory: row b takes the steps
// [offsets[b], offsets[b + 1]), step i visits node nodes[i] with sign signs[i]
// and belongs to row row_of[i]; touched node u is visited by the steps
// by_node[node_offsets[u] .. node_offsets[u + 1]).
struct DevicePaths {
  const int64_t* offsets;       // [B + 1]
  const int64_t* nodes;         // [S]
  const float* signs;           // [S]
  const int64_t* row_of;        // [S]
  const int64_t* touched;       // [U]
  const int64_t* node_offsets;  // [U + 1]
  const int64_t* by_node;       // [S]
  int64_t B, S, U;
};
// loss [B] and coef [S] as cpu::hierarchical_softmax_forward; step_loss [S] is
// workspace. node_bias may be null.
void huffman_loss_forward(float* loss, float* coef, float* step_loss, const float* hidden,
                          const float* node_weight, const float* node_bias, const DevicePaths& p,
                          int64_t d);
// Adds the gradients into dhidden [B, d], dnode_weight [N, d], dnode_bias [N]
// (any may be null); row b's upstream gradient is dout[b] (per_row) or dout[0] * scale.
void huffman_loss_backward(float* dhidden, float* dnode_weight, float* dnode_bias,
                           const float* hidden, const float* node_weight, const float* coef,
                           const float* dout, float scale, bool per_row, const DevicePaths& p,
                           int64_t d);

// The two-level tree's within-cluster softmax (within_cluster_nll): a batch's
// slots (cpu::ClusterBatch, plus row_of[i], the row of slot i) in device memory.
struct DeviceClusters {
  const int64_t* offsets;        // [B + 1]
  const int64_t* classes;        // [Z]
  const int64_t* row_of;         // [Z]
  const int64_t* target_pos;     // [B]
  const int64_t* group_offsets;  // [G + 1]
  const int64_t* group_rows;     // [B]
  const int64_t* work_group;     // [W]
  const int64_t* work_member;    // [W]
  const int64_t* work_class;     // [W]
  int64_t B, Z, W;
};
// nll [B], lse [B] and the slots' logits [Z] as cpu::within_cluster_forward.
void within_cluster_forward(float* nll, float* lse, float* logits, const float* hidden,
                            const float* class_weight, const float* class_bias,
                            const DeviceClusters& c, int64_t d);
// Writes dlogits [Z] (workspace) from dout [B], then adds into dhidden [B, d],
// dclass_weight [V, d] and dclass_bias [V] (any may be null).
void within_cluster_backward(float* dhidden, float* dclass_weight, float* dclass_bias,
                             float* dlogits, const float* logits, const float* lse,
                             const float* dout, const float* hidden, const float* class_weight,
                             const DeviceClusters& c, int64_t d);

// Every class's log-probability, out [B, V] (hierarchical_softmax_log_prob),
// from the node scores [B, N] (N = V - 1 >= 1) and the tree's paths: class c
// takes the nodes points[offsets[c] .. offsets[c + 1]) with bits codes[...], root
// first (HuffmanTree, codes widened to int64).
void huffman_log_prob_forward(float* out, const float* scores, const int64_t* offsets,
                              const int64_t* points, const int64_t* codes, int64_t B, int64_t V);
// Writes dscores [B, N] = d out / d scores against dout [B, V], as
// cpu::hierarchical_softmax_log_prob_backward (children [2 N] as in HuffmanTree).
void huffman_log_prob_backward(float* dscores, const float* scores, const float* dout,
                               const int64_t* children, int64_t B, int64_t V);
// class_based_log_prob: as cpu::class_based_log_prob_forward, with the clusters'
// classes members [V] at offsets [K + 1].
void class_log_prob_forward(float* out, float* within_lse, float* cluster_lse,
                            const float* class_logits, const float* cluster_logits,
                            const int64_t* offsets, const int64_t* members, int64_t B, int64_t V,
                            int64_t K);
// Adds into dclass_logits [B, V] and dcluster_logits [B, K] (either may be null),
// as cpu::class_based_log_prob_backward; cluster_sums [B, K] is workspace.
void class_log_prob_backward(float* dclass_logits, float* dcluster_logits, float* cluster_sums,
                             const float* class_logits, const float* cluster_logits,
                             const float* within_lse, const float* cluster_lse, const float* dout,
                             const int64_t* offsets, const int64_t* members, int64_t B, int64_t V,
                             int64_t K);

// --- shape.cu: transpose, cat ---------------------------------------------------------
// As cpu::transpose_copy (shape.cpp): out[o, j, m, i, k] = inp[o, i, m, j, k], the
// input seen as [outer, a, mid, b, inner]; elements of elem_size 4 or 8 bytes
// (float32, int32, int64: the copy moves bits).
void transpose_copy(void* out, const void* inp, int64_t elem_size, int64_t outer, int64_t a,
                    int64_t mid, int64_t b, int64_t inner);
// cat's pieces: dst[r * dst_ld + c] = src[r * src_ld + c] for r < rows, c < cols,
// in elements of elem_size 4 or 8 bytes.
void copy_block(void* dst, int64_t dst_ld, const void* src, int64_t src_ld, int64_t elem_size,
                int64_t rows, int64_t cols);
// cat's backward: dst[r * dst_ld + c] (+)= src[r * src_ld + c].
void add_block(float* dst, int64_t dst_ld, const float* src, int64_t src_ld, int64_t rows,
               int64_t cols, bool accumulate);

// --- activations.cu: gelu, leaky_relu --------------------------------------------------
// As the CPU kernels of activations.h; the backwards add into dx when accumulate.
void gelu_forward(float* y, const float* x, int64_t n, bool tanh_form);
void gelu_backward(float* dx, const float* x, const float* dy, int64_t n, bool tanh_form,
                   bool accumulate);
void leaky_relu_forward(float* y, const float* x, int64_t n, float negative_slope);
void leaky_relu_backward(float* dx, const float* x, const float* dy, int64_t n,
                         float negative_slope, bool accumulate);

// --- selection.cu: hardmax, topk -------------------------------------------------------
// Rows are [outer, n, inner] (op_utils.h). hardmax writes all of out: 1 at each
// row's first largest entry (NaN never wins, as in the CPU loop), 0 elsewhere.
void hardmax_forward(float* out, const float* inp, int64_t outer, int64_t n, int64_t inner);
// values and indices [outer, k, inner]: each row's k largest (smallest) entries
// in order, ties to the lower index (the CPU's stable sort); NaN counts as the
// largest value.
void topk_forward(float* values, int64_t* indices, const float* inp, int64_t outer, int64_t n,
                  int64_t inner, int64_t k, bool largest);
// dinp[o, indices[o, j, i], i] += dvalues[o, j, i]; accumulate = false first zeros dinp.
void topk_backward(float* dinp, const float* dvalues, const int64_t* indices, int64_t outer,
                   int64_t n, int64_t inner, int64_t k, bool accumulate);

// --- binary_cross_entropy.cu: sigmoid losses -------------------------------------------
// As cpu::bce_with_logits_forward / _backward (binary_cross_entropy.h): n elements,
// weight and pos_weight materialized to n (or null). Element i's upstream gradient
// is dout[i] (per_element: reduction none) or dout[0] * dout_scale.
void bce_with_logits_forward(float* loss, const float* x, const float* y, const float* weight,
                             const float* pos_weight, int64_t n);
void bce_with_logits_backward(float* dx, const float* x, const float* y, const float* weight,
                              const float* pos_weight, const float* dout, float dout_scale,
                              bool per_element, int64_t n, bool accumulate);

// --- sparsemax.cu: sparsemax, entmax and their losses ----------------------------------
// Rows of n contiguous values (sparsemax.h has the formulas). kSparsemax and
// kEntmax15 find each row's support by bisection and then its threshold in
// closed form, as the CPU's sort does; kBisect is cpu::entmax_bisect_rows
// (alpha > 1, n_iter steps).
enum class EntmaxKind { kSparsemax, kEntmax15, kBisect };
void entmax_forward(EntmaxKind kind, float* out, const float* inp, int64_t rows, int64_t n,
                    float alpha, int n_iter);
// din (+)= g (dout - sum(g dout) / sum(g)) on each row's support, g = out^(2 - alpha).
void entmax_backward(float* din, const float* out, const float* dout, int64_t rows, int64_t n,
                     float alpha, bool accumulate);
// The Fenchel-Young loss of class targets from p = entmax(z) [B, C]:
// row_loss[b] = (1 - sum_j p_j^alpha) / (alpha (alpha - 1)) + <p_b, z_b> - z_by,
// 0 where y is ignore_index.
void fenchel_young_forward(float* row_loss, const float* p, const float* z, const int64_t* targets,
                           int64_t B, int64_t C, float alpha, int64_t ignore_index);
void fenchel_young_forward(float* row_loss, const float* p, const float* z, const int32_t* targets,
                           int64_t B, int64_t C, float alpha, int64_t ignore_index);
// dz_b (+)= g_b (p_b - e_y), g_b as in cross_entropy_backward.
void fenchel_young_backward(float* dz, const float* p, const int64_t* targets, const float* dout,
                            float dout_scale, bool per_row, int64_t B, int64_t C,
                            int64_t ignore_index, bool accumulate);
void fenchel_young_backward(float* dz, const float* p, const int32_t* targets, const float* dout,
                            float dout_scale, bool per_row, int64_t B, int64_t C,
                            int64_t ignore_index, bool accumulate);
// *first = the smallest i with x[i] NaN or infinite, when that is smaller than
// *first (device memory the caller set to n, "none").
void first_non_finite(unsigned long long* first, const float* x, int64_t n);

// --- conv.cu, pool.cu, batch_norm.cu: through cuDNN (built with BRIDLE_WITH_CUDNN) ----
// NCHW float32, contiguous. Gradients follow cuDNN's alpha / beta: with
// `accumulate` they add into the buffer (beta = 1), without they overwrite it.

// The sizes of ConvGeometry (conv.h), which this header cannot include.
struct ConvSizes {
  int64_t N, C, H, W;  // x [N, C, H, W]
  int64_t O, KH, KW;   // w [O, C/G, KH, KW]
  int64_t OH, OW;      // y [N, O, OH, OW]
  int64_t SH, SW, PH, PW, DH, DW, G;
};
// y = conv(x, w) + b (b may be null).
void conv2d_forward(float* y, const float* x, const float* w, const float* b, const ConvSizes& s);
void conv2d_backward_data(float* dx, const float* w, const float* dy, const ConvSizes& s,
                          bool accumulate);
void conv2d_backward_filter(float* dw, const float* x, const float* dy, const ConvSizes& s,
                            bool accumulate);
void conv2d_backward_bias(float* db, const float* dy, const ConvSizes& s, bool accumulate);

// The sizes of PoolGeometry (pool.h), in its order.
struct PoolSizes {
  int64_t N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW;
};
enum class PoolKind { kMax, kAvgIncludePad, kAvgExcludePad };
// cuDNN pools without dilation: these need DH = DW = 1.
void pool2d_forward(PoolKind kind, float* y, const float* x, const PoolSizes& s);
// cuDNN's pooling backward reads the forward's input and output (max pooling
// finds each window's maximum again).
void pool2d_backward(PoolKind kind, float* dx, const float* y, const float* dy, const float* x,
                     const PoolSizes& s, bool accumulate);
// Max pooling with any dilation, kernels of ours, with cpu::max_pool2d_forward_naive's
// rules (padding never wins, NaN wins, ties go to the first in row-major order).
// argmax [N, C, OH, OW] gets ih * W + iw of each window's maximum (-1 for a window
// with no element inside the input); it may be null when no backward will run.
// The backward sums, for each input element, dy of the windows whose argmax it is
// (no atomics, a fixed order) and adds the sum into dx (accumulate) or writes it.
void max_pool2d_dilated_forward(float* y, int64_t* argmax, const float* x, const PoolSizes& s);
void max_pool2d_dilated_backward(float* dx, const int64_t* argmax, const float* dy,
                                 const PoolSizes& s, bool accumulate);
// adaptive_avg_pool2d with PyTorch's windows (pool.cpp), a kernel of ours (cuDNN
// has no adaptive pooling); planes = N C. The backward gathers each input
// element's share from the windows that hold it (no atomics) and adds it into dx.
void adaptive_avg_pool2d_forward(float* y, const float* x, int64_t planes, int64_t H, int64_t W,
                                 int64_t OH, int64_t OW);
void adaptive_avg_pool2d_backward(float* dx, const float* dy, int64_t planes, int64_t H, int64_t W,
                                  int64_t OH, int64_t OW);

// x seen as [N, C, HW]; weight and bias [C] must not be null (the op passes 1s
// and 0s without affine). Training: normalizes with the batch statistics, saves
// mean and 1 / sqrt(var + eps) for backward, and updates the running statistics
// (unbiased variance, as the CPU op) when they are not null.
void batch_norm_forward_training(float* y, float* save_mean, float* save_inv_std,
                                 float* running_mean, float* running_var, const float* x,
                                 const float* weight, const float* bias, int64_t N, int64_t C,
                                 int64_t HW, float momentum, float eps);
void batch_norm_forward_eval(float* y, const float* x, const float* mean, const float* var,
                             const float* weight, const float* bias, int64_t N, int64_t C,
                             int64_t HW, float eps);
// Training backward (through the batch statistics). dweight and dbias are
// written (not accumulated) and must not be null.
void batch_norm_backward_training(float* dx, float* dweight, float* dbias, const float* dy,
                                  const float* x, const float* weight, const float* save_mean,
                                  const float* save_inv_std, int64_t N, int64_t C, int64_t HW,
                                  float eps, bool accumulate_dx);
// Evaluation backward (the statistics were constants): cuDNN has none, so it is
// a kernel of ours. dx, dweight, dbias may be null; dweight and dbias accumulate.
void batch_norm_backward_eval(float* dx, float* dweight, float* dbias, const float* dy,
                              const float* x, const float* mean, const float* var,
                              const float* weight, int64_t N, int64_t C, int64_t HW, float eps,
                              bool accumulate_dx);

// --- optim/clip_grad.cu: gradient clipping (clip_grad.h) -----------------------------------
// As cpu::grad_norm_partials with blocks of `block` elements: partials (device
// memory) holds ceil(n / block) doubles.
void grad_norm_partials(const float* g, int64_t n, int64_t block, double p, double inv_scale,
                        double* partials);
// x *= factor; x = clamp(x, lo, hi), NaN staying NaN.
void scale_(float* x, int64_t n, float factor);
void clamp_(float* x, int64_t n, float lo, float hi);

// --- optim/{sgd,adam,rmsprop,adagrad}.cu: the fused updates -----------------------------------
// As cpu::sgd_step (optim/sgd.h); momentum_buffer may be null when momentum is 0.
void sgd_step(float* param, const float* grad, float* momentum_buffer, int64_t n, float lr,
              float momentum, float dampening, float weight_decay, bool nesterov, bool first);
// As cpu::adam_step (optim/adam.cpp), with its scalars derived on the host;
// max_exp_avg_sq is null without amsgrad.
void adam_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                 float* max_exp_avg_sq, int64_t n, const update_rules::AdamScalars& k, float beta1,
                 float beta2, float eps);
// As cpu::rmsprop_step (optim/rmsprop.h), with 1 - alpha from the host; grad_avg
// is null unless centered, momentum_buffer null without momentum.
void rmsprop_step(float* param, const float* grad, float* square_avg, float* grad_avg,
                  float* momentum_buffer, int64_t n, float lr, float alpha, float one_minus_alpha,
                  float eps, float weight_decay, float momentum);
// As cpu::adagrad_step (optim/adagrad.h), with the step's scale from the host
// (cpu::adagrad_neg_clr).
void adagrad_step(float* param, const float* grad, float* sum, int64_t n, float neg_clr,
                  float weight_decay, float eps);

}  // namespace bridle::cuda
