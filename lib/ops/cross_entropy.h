// Fused softmax cross-entropy from logits and integer class targets.
//
// Shapes (letters fixed for this file): B rows, C classes.
//   logits [B, C] float32, targets [B] int32/int64 in [0, C) or == ignore_index.
//   loss_b = logsumexp(logits_b) - logits_b[target_b]
//   reduction kMean: sum_b loss_b / (rows not ignored); kSum: sum; kNone: [B].
// Defaults follow PyTorch's CrossEntropyLoss (mean, ignore_index -100). Unlike
// PyTorch, a mean over a batch whose rows are all ignored is 0 (with zero
// gradient), not NaN. A target outside [0, C) is an error naming the row.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace bridle {

enum class Reduction { kNone, kMean, kSum };

struct CrossEntropyOptions {
  Reduction reduction = Reduction::kMean;
  int64_t ignore_index = -100;
};

Tensor cross_entropy(const Tensor& logits, const Tensor& targets,
                     const CrossEntropyOptions& options = {});

namespace cpu {

// Per-row loss and log-sum-exp (saved for backward). Targets already validated;
// ignored rows get loss 0 and lse 0.
template <typename Target>
void cross_entropy_forward(float* loss, float* lse, const float* logits, const Target* targets,
                           int64_t B, int64_t C, int64_t ignore_index);
// The same, written as the textbook two passes in double.
template <typename Target>
void cross_entropy_forward_naive(float* loss, float* lse, const float* logits,
                                 const Target* targets, int64_t B, int64_t C, int64_t ignore_index);
// dlogits_b += (softmax(logits_b) - onehot(target_b)) * dloss_b, one pass per row.
template <typename Target>
void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                            const Target* targets, const float* dloss, int64_t B, int64_t C,
                            int64_t ignore_index);

}  // namespace cpu
}  // namespace bridle
