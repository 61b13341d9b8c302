// Embedding: a lookup table of num_embeddings vectors of width dim, PyTorch's
// nn.Embedding without its sparse / max_norm / padding_idx options.
//
// Shapes: weight [V, d]; forward(indices [any shape], int32/int64 in [0, V)) ->
// [indices.shape..., d]. The weight starts as N(0, 1) like PyTorch's, and its
// gradient is dense [V, d] (the op is ops/indexing.h's embedding).
#pragma once

#include "core/factory.h"
#include "nn/module.h"

namespace bridle {

class Embedding : public Module {
 public:
  // Draws the initial weights from gen (the global generator by default).
  Embedding(int64_t num_embeddings, int64_t dim, Generator& gen = default_generator());
  Tensor forward(const Tensor& indices) override;

  Tensor weight;  // [num_embeddings, dim]

 protected:
  std::string extra_repr() const override;

 private:
  int64_t num_embeddings_, dim_;
};

}  // namespace bridle
