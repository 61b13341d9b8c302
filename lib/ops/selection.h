// Picking classes: hardmax (one-hot argmax), topk, and the Gumbel-softmax
// relaxation of sampling (Jang et al. 2017; Maddison et al. 2017).
//
// gumbel_softmax(logits, tau, hard): y = softmax((logits + g) / tau) with
// g = -log(-log u), u ~ Uniform(0, 1) drawn from the generator on the *open*
// interval (u = (k + 1/2) / 2^24), so g is always finite and y never NaN. With
// hard = true the result is the one-hot of argmax y in value and y in gradient
// (straight-through: y_hard - detach(y) + y). tau must be > 0.
#pragma once

#include <utility>

#include "core/factory.h"
#include "core/tensor.h"

namespace bridle {

// One-hot (float32) of the argmax along dim, ties to the first index. Not
// differentiable (like argmax): the result never requires grad.
Tensor hardmax(const Tensor& x, int64_t dim = -1);

// The k largest (or smallest) values along dim, in descending (ascending) order,
// ties to the lower index, and their int64 indices. Gradients flow to the
// chosen elements of x.
std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);

Tensor gumbel_softmax(const Tensor& logits, float tau = 1.0f, bool hard = false, int64_t dim = -1,
                      Generator& generator = default_generator());

}  // namespace bridle
