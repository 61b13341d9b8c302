// MixtureOfSoftmaxes; see mixture_of_softmaxes.h.
#include "nn/mixture_of_softmaxes.h"

#include "ops/elementwise.h"
#include "ops/shape.h"
#include "ops/softmax.h"

namespace bridle {

MixtureOfSoftmaxes::MixtureOfSoftmaxes(int64_t hidden, int64_t num_classes, int64_t components,
                                       Generator& gen)
    : Module("MixtureOfSoftmaxes"),
      hidden_(hidden),
      num_classes_(num_classes),
      components_(components) {
  BRIDLE_CHECK(hidden > 0 && num_classes > 0 && components > 0,
               "MixtureOfSoftmaxes: sizes must be positive, got hidden={} classes={} "
               "components={}",
               hidden, num_classes, components);
  prior = register_module("prior", std::make_shared<Linear>(hidden, components, false, gen));
  latent =
      register_module("latent", std::make_shared<Linear>(hidden, components * hidden, true, gen));
  decoder = register_module("decoder", std::make_shared<Linear>(hidden, num_classes, true, gen));
}

Tensor MixtureOfSoftmaxes::forward(const Tensor& h) {
  BRIDLE_CHECK(h.dim() == 2 && h.size(1) == hidden_,
               "MixtureOfSoftmaxes: input must be [B, {}], got {}", hidden_, shape_str(h.shape()));
  const int64_t B = h.size(0), K = components_, C = num_classes_;
  Tensor log_prior = reshape(log_softmax(prior->forward(h), -1), {B, K, 1});
  Tensor contexts = reshape(tanh(latent->forward(h)), {B * K, hidden_});
  Tensor log_probs = reshape(log_softmax(decoder->forward(contexts), -1), {B, K, C});
  return logsumexp(log_probs + log_prior, 1);  // [B, C]
}

std::string MixtureOfSoftmaxes::extra_repr() const {
  return fmt::format("hidden={}, num_classes={}, components={}", hidden_, num_classes_,
                     components_);
}

}  // namespace bridle
