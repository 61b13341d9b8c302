// Fused softmax cross-entropy, PyTorch's CrossEntropyLoss, and nll_loss.
//
// Shapes (letters fixed for this file): B rows, C classes.
//   logits [B, C] float32, and targets either
//     class indices [B] int32/int64 in [0, C) or == ignore_index, or
//     probabilities [B, C] float32 (soft targets; each row a distribution).
// With p = softmax(logits_b), lse_b = logsumexp(logits_b), w = the class weights
// (all 1 without them) and eps = label_smoothing, the per-row losses are
//   class target y:  nll_b    = w_y (lse_b - z_by)
//                    smooth_b = sum_c w_c (lse_b - z_bc)       (only when eps > 0)
//                    loss_b   = (1 - eps) nll_b + eps / C smooth_b
//   soft target t:   loss_b   = sum_c w_c t'_bc (lse_b - z_bc),  t' = (1 - eps) t + eps / C
// and reduction kMean divides the sum by sum_b w_{y_b} over the rows not ignored
// (class targets; the count of those rows without weights) or by B (soft
// targets); kSum sums; kNone returns [B]. These are PyTorch's semantics
// (aten/src/ATen/native/LossNLL.cpp), checked against it in committed fixtures.
// Two documented differences: a kMean over a batch whose rows are all ignored is 0
// (with zero gradient), where PyTorch gives NaN; and class weights are constants
// (a weight that requires grad is an error, where PyTorch fails in backward).
// A class target outside [0, C) is an error naming the row; so is ignore_index >= 0
// with soft targets (as in PyTorch).
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace bridle {

enum class Reduction { kNone, kMean, kSum };
// "none", "mean" or "sum".
const char* reduction_name(Reduction reduction);

struct CrossEntropyOptions {
  Reduction reduction = Reduction::kMean;
  int64_t ignore_index = -100;
  Tensor weight = {};            // [C] class weights, or undefined for all 1
  float label_smoothing = 0.0f;  // in [0, 1]
};

Tensor cross_entropy(const Tensor& logits, const Tensor& targets,
                     const CrossEntropyOptions& options = {});

// The negative log-likelihood of class targets, from log-probabilities [B, C]:
// loss_b = -w_y log_probs_by, with cross_entropy's reduction and ignore_index
// semantics (cross_entropy = nll_loss(log_softmax(logits)) without smoothing).
struct NllLossOptions {
  Reduction reduction = Reduction::kMean;
  int64_t ignore_index = -100;
  Tensor weight = {};  // [C] class weights, or undefined for all 1
};

Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, const NllLossOptions& options = {});

// Softmax focal loss (Lin et al. 2017, in the form of Keras'
// CategoricalFocalCrossentropy): with p = softmax(logits_b) and t_b the target
// distribution (one-hot for class indices),
//   loss_b = -sum_c alpha_c (1 - p_bc)^gamma t_bc log p_bc
// where alpha_c = class_alpha[c] when given, else alpha. kMean averages over the
// B rows. gamma = 0 and alpha = 1 is cross_entropy (tested).
struct FocalLossOptions {
  float alpha = 0.25f;
  Tensor class_alpha = {};  // [C] per-class alpha, or undefined
  float gamma = 2.0f;       // >= 0
  Reduction reduction = Reduction::kMean;
};

Tensor focal_loss(const Tensor& logits, const Tensor& targets,
                  const FocalLossOptions& options = {});

namespace cpu {

// Class targets. Writes lse[b] (saved for backward), nll[b] and, when smooth is
// not null, smooth[b] (see the formulas above); weight may be null (all 1).
// Targets are already validated; ignored rows get 0 everywhere.
template <typename Target>
void cross_entropy_forward(float* nll, float* smooth, float* lse, const float* logits,
                           const Target* targets, const float* weight, int64_t B, int64_t C,
                           int64_t ignore_index);
// The same, written as the textbook passes (max, sum of exp, log) in double.
template <typename Target>
void cross_entropy_forward_naive(float* nll, float* smooth, float* lse, const float* logits,
                                 const Target* targets, const float* weight, int64_t B, int64_t C,
                                 int64_t ignore_index);
// accumulate = false writes = instead of += (a fresh buffer, ignored rows get 0).
// dlogits_b += nll_scale_b d nll_b / dz_b + smooth_scale_b d smooth_b / dz_b, one
// pass per row: d nll_b / dz_bj = w_y (p_bj - [j == y]) and d smooth_b / dz_bj =
// p_bj sum_c w_c - w_j. smooth_scale may be null (no smoothing).
template <typename Target>
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const Target* targets, const float* weight, const float* nll_scale,
                            const float* smooth_scale, int64_t B, int64_t C, int64_t ignore_index,
                            bool accumulate = true);

// Soft targets. Writes loss[b], lse[b] and target_mass[b] = sum_c w_c t'_bc.
void cross_entropy_soft_forward(float* loss, float* lse, float* target_mass, const float* logits,
                                const float* targets, const float* weight, float smoothing,
                                int64_t B, int64_t C);
void cross_entropy_soft_forward_naive(float* loss, float* lse, float* target_mass,
                                      const float* logits, const float* targets,
                                      const float* weight, float smoothing, int64_t B, int64_t C);
// dlogits_bj += dloss_b (p_bj target_mass_b - w_j t'_bj).
void cross_entropy_soft_backward(float* dlogits, const float* logits, const float* lse,
                                 const float* target_mass, const float* targets,
                                 const float* weight, float smoothing, const float* dloss,
                                 int64_t B, int64_t C, bool accumulate = true);

}  // namespace cpu
}  // namespace bridle
