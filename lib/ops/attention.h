// Scaled dot-product attention: out = softmax(Q K^T scale + mask) V, the
// softmax-attention of the Transformer, composed from matmul and masked_softmax so
// its backward is theirs.
//
// Shapes: q [N, L, E], k [N, S, E], v [N, S, Ev] -> [N, L, Ev] (N batches, e.g.
// batch x heads; 2-D [L, E] inputs work too). scale defaults to 1 / sqrt(E).
// mask broadcasts to [N, L, S], with PyTorch's scaled_dot_product_attention
// conventions: an int32/int64 mask keeps the positions where it is nonzero (true
// = take part); a float32 mask is added to the scores. causal keeps key j for
// query i only when j <= i (top-left aligned, as PyTorch's is_causal). A query
// whose keys are all masked attends to nothing and gets zeros (PyTorch gives NaN).
#pragma once

#include "core/tensor.h"

namespace bridle {

struct AttentionOptions {
  Tensor mask = {};     // keep-mask (int) or additive mask (float), or undefined
  bool causal = false;  // also mask key j > query i
  float scale = 0.0f;   // 0: 1 / sqrt(E)
};

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& options = {});

// The attention weights softmax(Q K^T scale + mask) alone, [N, L, S].
Tensor attention_weights(const Tensor& q, const Tensor& k, const AttentionOptions& options = {});

}  // namespace bridle
