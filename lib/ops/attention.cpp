// Scaled dot-product attention, composed from ops; see attention.h.
//
// Every op it is made of (matmul, transpose, the scalar multiply, add,
// safe_softmax, masked_softmax) has CUDA kernels, so it runs on either device;
// its backward is theirs.
#include "ops/attention.h"

#include <cmath>
#include <limits>

#include "core/factory.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/op_utils.h"
#include "ops/shape.h"
#include "ops/softmax.h"

namespace bridle {

Tensor attention_weights(const Tensor& q, const Tensor& k, const AttentionOptions& options) {
  check_float("attention", q, "q");
  check_float("attention", k, "k");
  check_device("attention", {q, k, options.mask}, Kernels::kCpuAndCuda);
  BRIDLE_CHECK((q.dim() == 2 || q.dim() == 3) && k.dim() == q.dim(),
               "attention: q and k must both be [L, E] or [N, L, E], got {} and {}",
               shape_str(q.shape()), shape_str(k.shape()));
  const int64_t E = q.size(-1), L = q.size(-2), S = k.size(-2);
  BRIDLE_CHECK(k.size(-1) == E && (q.dim() == 2 || q.size(0) == k.size(0)),
               "attention: k {} does not match q {} (same batch and feature size)",
               shape_str(k.shape()), shape_str(q.shape()));
  const float scale =
      options.scale != 0.0f ? options.scale : 1.0f / std::sqrt(static_cast<float>(E));
  Tensor scores = matmul(q, transpose(k, -2, -1)) * scale;  // [N, L, S]
  if (options.causal) {
    Tensor causal = Tensor::empty({L, S});
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = 0; j < S; ++j)
        causal.data<float>()[i * S + j] = j <= i ? 0.0f : -std::numeric_limits<float>::infinity();
    scores = scores + causal.to(q.device());  // built on the host, copied once
  }
  if (!options.mask.defined()) return safe_softmax(scores, -1);
  BRIDLE_CHECK(!options.mask.requires_grad(), "attention: the mask is a constant; detach() it");
  BRIDLE_CHECK(
      broadcast_shapes("attention", scores.shape(), options.mask.shape()) == scores.shape(),
      "attention: mask {} must broadcast to the scores {}", shape_str(options.mask.shape()),
      shape_str(scores.shape()));
  return masked_softmax(scores, options.mask, -1);  // keep-masks become 0 / -inf there
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options) {
  check_float("attention", v, "v");
  BRIDLE_CHECK(
      v.dim() == k.dim() && v.size(-2) == k.size(-2) && (v.dim() == 2 || v.size(0) == k.size(0)),
      "attention: v {} must have k's {} batch and sequence length", shape_str(v.shape()),
      shape_str(k.shape()));
  return matmul(attention_weights(q, k, options), v);
}

}  // namespace bridle
