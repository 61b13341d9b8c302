// Multi-label losses on independent sigmoids: binary cross-entropy from logits,
// and the sigmoid focal loss (Lin et al. 2017; torchvision's sigmoid_focal_loss).
//
// binary_cross_entropy_with_logits(x, y), elementwise, as PyTorch:
//   loss = -w [pos_weight y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))]
// computed in the stable form
//   loss = w [(1 - y) x + L (log1p(exp(-|x|)) + max(-x, 0))],   L = 1 + (pos_weight - 1) y
// which never takes the log of 0, so x = +-1e4 gives exact losses. Its gradient is
//   d loss / dx = w (L sigmoid(x) - pos_weight y).
// x and y (targets in [0, 1], constants) have one shape; weight broadcasts to it;
// pos_weight [C] weighs the positives of each class along the last dim. Reduction
// kMean averages over every element.
//
// sigmoid_focal_loss(x, y, alpha, gamma): with p = sigmoid(x),
//   p_t = p y + (1 - p)(1 - y),   alpha_t = alpha y + (1 - alpha)(1 - y)
//   loss = alpha_t (1 - p_t)^gamma bce(x, y)
// (alpha < 0: no alpha_t; gamma = 0: plain, alpha-weighted binary cross-entropy).
#pragma once

#include "core/tensor.h"
#include "ops/cross_entropy.h"

namespace bridle {

struct BinaryCrossEntropyOptions {
  Reduction reduction = Reduction::kMean;
  Tensor weight = {};      // broadcasts to the input's shape, or undefined
  Tensor pos_weight = {};  // [C], the input's last dim, or undefined
};

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets,
                                        const BinaryCrossEntropyOptions& options = {});

struct SigmoidFocalOptions {
  float alpha = 0.25f;                     // < 0: no alpha weighting
  float gamma = 2.0f;                      // >= 0
  Reduction reduction = Reduction::kNone;  // torchvision's default
};

Tensor sigmoid_focal_loss(const Tensor& logits, const Tensor& targets,
                          const SigmoidFocalOptions& options = {});

namespace cpu {

// loss[i] and, for backward, nothing else: the gradient recomputes sigmoid(x).
// weight and pos_weight are materialized to n elements (or null).
void bce_with_logits_forward(float* loss, const float* x, const float* y, const float* weight,
                             const float* pos_weight, int64_t n);
// The textbook form -w [pw y log s + (1 - y) log(1 - s)] in double: exact for
// moderate x, overflowing to inf where the stable form does not.
void bce_with_logits_forward_naive(float* loss, const float* x, const float* y, const float* weight,
                                   const float* pos_weight, int64_t n);
// dx[i] += dloss[i] w (L sigmoid(x) - pw y).
void bce_with_logits_backward(float* dx, const float* x, const float* y, const float* weight,
                              const float* pos_weight, const float* dloss, int64_t n);

}  // namespace cpu
}  // namespace bridle
