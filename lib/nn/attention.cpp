// MultiheadAttention; see attention.h.
#include "nn/attention.h"

#include <cmath>
#include <limits>

#include "core/factory.h"
#include "ops/attention.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace bridle {

MultiheadAttention::MultiheadAttention(int64_t embed_dim, int64_t num_heads, bool bias,
                                       Generator& gen)
    : Module("MultiheadAttention"), embed_dim_(embed_dim), num_heads_(num_heads) {
  BRIDLE_CHECK(embed_dim > 0 && num_heads > 0 && embed_dim % num_heads == 0,
               "MultiheadAttention: embed_dim {} must be a positive multiple of num_heads {}",
               embed_dim, num_heads);
  // PyTorch: xavier_uniform_ on the stacked projections (fan_in E, fan_out 3E), zero biases.
  const float bound = std::sqrt(6.0f / static_cast<float>(4 * embed_dim));
  in_proj_weight =
      register_parameter("in_proj_weight", uniform({3 * embed_dim, embed_dim}, -bound, bound, gen));
  if (bias) in_proj_bias = register_parameter("in_proj_bias", zeros({3 * embed_dim}));
  out_proj = register_module("out_proj", std::make_shared<Linear>(embed_dim, embed_dim, bias, gen));
  if (bias) out_proj->bias.fill_(0.0);
}

Tensor MultiheadAttention::forward(const Tensor& x) { return forward(x, x, x).output; }

namespace {

// An int mask (nonzero = masked out) as an additive float mask; a float one as
// is. On the host, wherever the mask was: the combined mask is built there.
Tensor additive_mask(const Tensor& mask) {
  if (mask.is_float()) return mask.cpu();
  Tensor m = mask.cpu().to(DType::kFloat32);
  Tensor out = Tensor::empty(m.shape());
  for (int64_t i = 0; i < m.numel(); ++i)
    out.data<float>()[i] =
        m.data<float>()[i] != 0.0f ? -std::numeric_limits<float>::infinity() : 0.0f;
  return out;
}

}  // namespace

MultiheadAttentionOutput MultiheadAttention::forward(const Tensor& query, const Tensor& key,
                                                     const Tensor& value,
                                                     const Tensor& key_padding_mask,
                                                     const Tensor& attn_mask) {
  BRIDLE_CHECK(query.dim() == 3 && key.dim() == 3 && value.dim() == 3,
               "MultiheadAttention: query, key and value must be [B, L, E] (batch first), got "
               "{}, {}, {}",
               shape_str(query.shape()), shape_str(key.shape()), shape_str(value.shape()));
  const int64_t B = query.size(0), L = query.size(1), S = key.size(1), E = embed_dim_;
  const int64_t H = num_heads_, D = E / H;
  BRIDLE_CHECK(query.size(2) == E && key.size(2) == E && value.size(2) == E && key.size(0) == B &&
                   value.size(0) == B && value.size(1) == S,
               "MultiheadAttention: expected query [B, L, {}] and key, value [B, S, {}], got {}, "
               "{}, {}",
               E, E, shape_str(query.shape()), shape_str(key.shape()), shape_str(value.shape()));
  // Project, then [B, T, E] -> [B, T, H, D] -> [B, H, T, D] -> [B H, T, D].
  auto project = [&](const Tensor& x, int64_t part, int64_t T) {
    Tensor w = slice(in_proj_weight, part * E, (part + 1) * E);
    Tensor b = in_proj_bias.defined() ? slice(in_proj_bias, part * E, (part + 1) * E) : Tensor();
    return reshape(transpose(reshape(linear(x, w, b), {B, T, H, D}), 1, 2), {B * H, T, D});
  };
  Tensor q = project(query, 0, L), k = project(key, 1, S), v = project(value, 2, S);

  // Both masks as one additive [B H, L, S] constant, built on the host and
  // moved to the query's device.
  Tensor mask;
  if (key_padding_mask.defined() || attn_mask.defined()) {
    mask = zeros({B, H, L, S});
    float* m = mask.data<float>();
    if (key_padding_mask.defined()) {
      BRIDLE_CHECK(key_padding_mask.shape() == (Shape{B, S}),
                   "MultiheadAttention: key_padding_mask must be [{}, {}], got {}", B, S,
                   shape_str(key_padding_mask.shape()));
      Tensor add = additive_mask(key_padding_mask);
      for (int64_t i = 0; i < B * H * L * S; ++i)
        m[i] += add.data<float>()[(i / (H * L * S)) * S + i % S];
    }
    if (attn_mask.defined()) {
      BRIDLE_CHECK(attn_mask.shape() == (Shape{L, S}),
                   "MultiheadAttention: attn_mask must be [{}, {}], got {}", L, S,
                   shape_str(attn_mask.shape()));
      Tensor add = additive_mask(attn_mask);
      for (int64_t i = 0; i < B * H * L * S; ++i) m[i] += add.data<float>()[i % (L * S)];
    }
    mask = reshape(mask, {B * H, L, S}).to(query.device());
  }
  Tensor weights = attention_weights(q, k, {.mask = mask});  // [B H, L, S]
  Tensor heads = matmul(weights, v);                         // [B H, L, D]
  Tensor out = reshape(transpose(reshape(heads, {B, H, L, D}), 1, 2), {B, L, E});
  return {out_proj->forward(out), mean(reshape(weights, {B, H, L, S}), 1)};
}

std::string MultiheadAttention::extra_repr() const {
  return fmt::format("embed_dim={}, num_heads={}, bias={}", embed_dim_, num_heads_,
                     in_proj_bias.defined());
}

}  // namespace bridle
