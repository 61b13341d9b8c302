// The embedding layer; see embedding.h.
#include "nn/embedding.h"

#include "ops/indexing.h"

namespace bridle {

Embedding::Embedding(int64_t num_embeddings, int64_t dim, Generator& gen)
    : Module("Embedding"), num_embeddings_(num_embeddings), dim_(dim) {
  BRIDLE_CHECK(num_embeddings > 0 && dim > 0,
               "Embedding: sizes must be positive, got num_embeddings={} dim={}", num_embeddings,
               dim);
  weight = register_parameter("weight", randn({num_embeddings, dim}, gen));
}

Tensor Embedding::forward(const Tensor& indices) { return embedding(weight, indices); }

std::string Embedding::extra_repr() const { return fmt::format("{}, {}", num_embeddings_, dim_); }

}  // namespace bridle
