// MultiheadAttention: PyTorch's nn.MultiheadAttention (batch_first = true), heads
// of scaled dot-product attention over learned projections.
//
//   q = query W_q^T + b_q, k = key W_k^T + b_k, v = value W_v^T + b_v   ([B, *, E])
//   split E into H heads of D = E / H; out_h = attention(q_h, k_h, v_h)
//   out = concat_h(out_h) W_o^T + b_o
// with W_q, W_k, W_v stacked in in_proj_weight [3E, E] (PyTorch's layout, so
// weights load across) and out_proj a Linear(E, E). Masks follow
// nn.MultiheadAttention: key_padding_mask [B, S] and attn_mask [L, S] are int
// tensors where *nonzero means masked out*, or float tensors that are added.
#pragma once

#include "nn/layers.h"

namespace bridle {

struct MultiheadAttentionOutput {
  Tensor output;   // [B, L, E]
  Tensor weights;  // [B, L, S], averaged over heads
};

class MultiheadAttention : public Module {
 public:
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, bool bias = true,
                     Generator& gen = default_generator());
  // Self-attention: query = key = value = x.
  Tensor forward(const Tensor& x) override;
  MultiheadAttentionOutput forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                   const Tensor& key_padding_mask = Tensor(),
                                   const Tensor& attn_mask = Tensor());

  Tensor in_proj_weight;  // [3E, E]
  Tensor in_proj_bias;    // [3E], undefined without bias
  std::shared_ptr<Linear> out_proj;

 protected:
  std::string extra_repr() const override;

 private:
  int64_t embed_dim_, num_heads_;
};

}  // namespace bridle
