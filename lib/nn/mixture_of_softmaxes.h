// MixtureOfSoftmaxes: the output layer of Yang et al. (2018), "Breaking the
// Softmax Bottleneck". A single softmax over W h has rank at most the hidden size;
// a mixture of K softmaxes does not:
//   pi      = softmax(h W_pi^T)                         [B, K]   mixture weights
//   h_k     = tanh(W_k h + b_k)                          [B, K, d] one context per component
//   log p_c = logsumexp_k(log pi_k + log_softmax(h_k W^T + b)_c)
// computed in log space throughout (no probability underflows), with the output
// projection W [C, d] shared by the components. forward returns log-probabilities
// [B, C]: train it with nll_loss.
#pragma once

#include "nn/layers.h"

namespace bridle {

class MixtureOfSoftmaxes : public Module {
 public:
  MixtureOfSoftmaxes(int64_t hidden, int64_t num_classes, int64_t components,
                     Generator& gen = default_generator());
  Tensor forward(const Tensor& h) override;  // [B, hidden] -> log-probabilities [B, C]

  std::shared_ptr<Linear> prior, latent, decoder;

 protected:
  std::string extra_repr() const override;

 private:
  int64_t hidden_, num_classes_, components_;
};

}  // namespace bridle
