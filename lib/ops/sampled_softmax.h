// Sampled softmax and NCE losses: TensorFlow's tf.nn.sampled_softmax_loss and
// tf.nn.nce_loss (and their _compute_sampled_logits), fused into one op each.
//
// Shapes (letters fixed for this file): V classes, d hidden size, B rows,
// T = num_true true classes per row, S sampled classes, N = T + S columns.
//   weight [V, d] float32, bias [V] float32 or undefined, hidden [B, d] float32,
//   labels int32/int64 [B, T] (or [B] when T = 1), each in [0, V),
//   sampled.ids int32/int64 [S], one sample set shared by the whole batch.
// For row b the op looks at N logits, its true classes first:
//   z_bt     = h_b . w_{y_bt} + b_{y_bt} - log Qtrue_bt          t < T
//   z_b,T+s  = h_b . w_{id_s} + b_{id_s} - log Qsampled_s         s < S
// where the log Q terms are subtracted only with subtract_log_q (Q = the expected
// counts of the candidate sampler, nn/candidate_sampler.h). With
// remove_accidental_hits, a sampled column whose id equals one of row b's true
// classes (an "accidental hit") gets the logit kAccidentalHitLogit, so exp and
// sigmoid give exactly 0 there: it adds nothing to the loss or the gradients.
// Then
//   sampled_softmax: loss_b = logsumexp_j z_bj - (1/T) sum_t z_bt
//                    (softmax cross-entropy, each true column labelled 1/T)
//   nce:             loss_b = sum_j sigmoid_ce(z_bj, l_j), l_j = [j < T]
//                    (sigmoid cross-entropy, labels 1 for the true columns, 0 for
//                    the sampled ones: sum_t softplus(-z_bt) + sum_s softplus(z_b,T+s))
// and kMean averages over the B rows, kSum sums, kNone returns [B] (TensorFlow
// returns that [B] vector). The defaults are TensorFlow's: subtract_log_q on, hit
// removal on for sampled softmax and off for NCE.
//
// Gradients reach weight, bias and hidden. dweight is a dense [V, d] gradient
// whose only non-zero rows are those of the batch's true classes and the sampled ids
// (a row that occurs several times accumulates each occurrence). Labels, ids and
// expected counts are constants.
//
// Two documented differences from TensorFlow:
//   - its compute_accidental_hits masks only the last position of a sampled id
//     that occurs twice (possible only without unique sampling); here every
//     occurrence is masked;
//   - its nce_loss labels the true columns 1/T (the softmax's labels, reused), so
//     for T > 1 a true class is pushed towards probability 1/T rather than 1
//     (tensorflow/tensorflow#10267). NCE's labels are 1 here; set
//     NceOptions::divide_true_labels for TensorFlow's (identical for T = 1).
//
// Both run on a GPU too (sampled_softmax.cu) when every tensor is there; the
// labels and ids are then checked on the host, with the same errors.
//
// At evaluation the full softmax is exact: log_softmax(linear(h, weight, bias)).
// nn/sampled_softmax.h wraps these losses in a layer that draws the samples.
#pragma once

#include <cstdint>
#include <limits>

#include "core/tensor.h"
#include "ops/cross_entropy.h"

namespace bridle {

// The logit of a removed accidental hit: TensorFlow adds -FLT_MAX to it, which
// leaves -FLT_MAX for any logit of ordinary size. exp(z - max) and sigmoid(z) are
// exactly 0 there, and so are that column's loss terms and gradients.
inline constexpr float kAccidentalHitLogit = -std::numeric_limits<float>::max();

// TensorFlow's sampled_values triple: the shared sample set and the expected
// counts. The counts are needed only with subtract_log_q.
struct SampledValues {
  Tensor ids;                     // int32/int64 [S]
  Tensor true_expected_count;     // float32 [B, T] (or [B] when T = 1), each > 0
  Tensor sampled_expected_count;  // float32 [S], each > 0
};

struct SampledSoftmaxOptions {
  int64_t num_true = 1;  // >= 1
  bool remove_accidental_hits = true;
  bool subtract_log_q = true;
  Reduction reduction = Reduction::kMean;
};

struct NceOptions {
  int64_t num_true = 1;  // >= 1
  bool remove_accidental_hits = false;
  bool subtract_log_q = true;
  Reduction reduction = Reduction::kMean;
  bool divide_true_labels = false;  // label the true columns 1/T, as tf.nn.nce_loss
};

Tensor sampled_softmax_loss(const Tensor& weight, const Tensor& bias, const Tensor& hidden,
                            const Tensor& labels, const SampledValues& sampled,
                            const SampledSoftmaxOptions& options = {});
Tensor nce_loss(const Tensor& weight, const Tensor& bias, const Tensor& hidden,
                const Tensor& labels, const SampledValues& sampled, const NceOptions& options = {});

namespace cpu {

// The N logits of every row, [B, N] (see above). labels [B * T] and sampled [S]
// are in [0, V); bias, true_log_q [B * T] and sampled_log_q [S] may be null
// (no bias, no correction). gathered [S, d] receives weight[sampled[s]] (the
// backward reuses it); the sampled logits are then one GEMM, hidden x gathered^T.
void sampled_logits(float* logits, float* gathered, const float* weight, const float* bias,
                    const float* hidden, const int64_t* labels, const int64_t* sampled,
                    const float* true_log_q, const float* sampled_log_q,
                    bool remove_accidental_hits, int64_t B, int64_t T, int64_t S, int64_t d);
// The same as textbook loops in double, straight from weight.
void sampled_logits_naive(float* logits, const float* weight, const float* bias,
                          const float* hidden, const int64_t* labels, const int64_t* sampled,
                          const float* true_log_q, const float* sampled_log_q,
                          bool remove_accidental_hits, int64_t B, int64_t T, int64_t S, int64_t d);

// Per-row losses from the logits; the softmax also writes lse[b] for its backward.
void sampled_softmax_forward(float* loss, float* lse, const float* logits, int64_t B, int64_t T,
                             int64_t S);
void sampled_softmax_forward_naive(float* loss, float* lse, const float* logits, int64_t B,
                                   int64_t T, int64_t S);
// NCE's true columns carry the label true_label (1, or TensorFlow's 1/T):
// sigmoid_ce(z, l) = max(z, 0) - l z + log(1 + e^-|z|).
void nce_forward(float* loss, const float* logits, float true_label, int64_t B, int64_t T,
                 int64_t S);
void nce_forward_naive(float* loss, const float* logits, float true_label, int64_t B, int64_t T,
                       int64_t S);

// d loss / d logits, written (not accumulated) into a [B, N] scratch:
//   softmax: dz_bj = dloss_b (exp(z_bj - lse_b) - [j < T] / T)
//   nce:     dz_bj = dloss_b (sigmoid(z_bj) - [j < T] true_label)
// A removed hit has exp(...) = sigmoid(...) = 0 and label 0, so its dz is 0.
void sampled_softmax_dlogits(float* dlogits, const float* logits, const float* lse,
                             const float* dloss, int64_t B, int64_t T, int64_t S);
void nce_dlogits(float* dlogits, const float* logits, const float* dloss, float true_label,
                 int64_t B, int64_t T, int64_t S);

// Backward of sampled_logits, accumulating (+=) into dhidden [B, d], dweight
// [V, d] and dbias [V]; any of the three may be null (not wanted):
//   dhidden_b   += sum_j dz_bj w_{col j}
//   dweight_c   += sum over the (b, j) whose column j is class c of dz_bj h_b
//   dbias_c     += the same sum of dz_bj
// gathered is sampled_logits' [S, d]; scratch [S, d] receives the sampled rows'
// gradient (dz_sampled^T hidden, one GEMM) before it is added into dweight.
void sampled_logits_backward(float* dhidden, float* dweight, float* dbias, const float* dlogits,
                             const float* gathered, float* scratch, const float* weight,
                             const float* hidden, const int64_t* labels, const int64_t* sampled,
                             int64_t B, int64_t T, int64_t S, int64_t d);
void sampled_logits_backward_naive(float* dhidden, float* dweight, float* dbias,
                                   const float* dlogits, const float* weight, const float* hidden,
                                   const int64_t* labels, const int64_t* sampled, int64_t B,
                                   int64_t T, int64_t S, int64_t d);

}  // namespace cpu
}  // namespace bridle
