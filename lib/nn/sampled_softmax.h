// SampledSoftmax and Nce: output layers over V classes that train on a sampled
// loss (ops/sampled_softmax.h) and evaluate with the exact full softmax.
//
// Shapes: hidden [B, d] -> logits h W^T + b [B, V], with weight [V, d] (initialized
// as Linear's, uniform in +-1/sqrt(d)) and bias [V] (zeros, as TensorFlow's
// word2vec). Targets are int32/int64 [B] (num_true = 1) or [B, num_true].
//
//   loss(h, y)     training mode: draws one sample set of num_sampled ids for the
//                  whole batch from the sampler (with the layer's own seeded
//                  generator), then sampled_softmax_loss (SampledSoftmax) or
//                  nce_loss (Nce). Evaluation mode (eval()): the exact full
//                  softmax cross-entropy of the logits, -(1/T) sum_t log p_{y_t}
//                  per row (so loss == -mean of log_prob at the targets for T = 1).
//   log_prob(h)    exact log_softmax(h W^T + b) [B, V] in either mode.
//   predict(h)     argmax of the logits [B] int64 (no graph recorded).
// forward(h) is log_prob(h).
//
// The sampler defaults to TensorFlow's: log-uniform over V (ids sorted by
// decreasing frequency) with unique sampling. A LearnedUnigramSampler learns from
// the targets of every training loss() call (after that call's draw).
// Nce evaluates like SampledSoftmax, with the full softmax: TensorFlow's docs show
// a full sigmoid cross-entropy for NCE evaluation instead, but one normalized
// distribution keeps loss, log_prob and predict consistent with each other.
#pragma once

#include <memory>
#include <optional>
#include <utility>

#include "core/factory.h"
#include "nn/candidate_sampler.h"
#include "nn/module.h"
#include "ops/sampled_softmax.h"

namespace bridle {

struct SampledSoftmaxLayerOptions {
  int64_t num_true = 1;  // targets per row
  bool unique = true;    // sample without repeats (TensorFlow's default for both losses)
  // Unset: the loss's default (true for sampled softmax, false for NCE).
  std::optional<bool> remove_accidental_hits;
  bool subtract_log_q = true;
  uint64_t seed = 0;  // the layer's sampling generator
};

class SampledSoftmax : public Module {
 public:
  // sampler: null for LogUniformSampler(num_classes); its range must be num_classes.
  // Weights are drawn from gen (the global generator by default).
  SampledSoftmax(int64_t hidden, int64_t num_classes, int64_t num_sampled,
                 std::shared_ptr<CandidateSampler> sampler = nullptr,
                 SampledSoftmaxLayerOptions options = {}, Generator& gen = default_generator());

  Tensor loss(const Tensor& hidden, const Tensor& targets, Reduction reduction = Reduction::kMean);
  Tensor log_prob(const Tensor& hidden);
  Tensor predict(const Tensor& hidden);
  Tensor forward(const Tensor& hidden) override { return log_prob(hidden); }

  // The logits h W^T + b [B, V] (what log_prob normalizes).
  Tensor logits(const Tensor& hidden);

  CandidateSampler& sampler() { return *sampler_; }
  Generator& generator() { return sampling_gen_; }
  int64_t num_sampled() const { return num_sampled_; }
  bool is_nce() const { return nce_; }

  Tensor weight;  // [V, d]
  Tensor bias;    // [V]

 protected:
  SampledSoftmax(const char* type_name, bool nce, int64_t hidden, int64_t num_classes,
                 int64_t num_sampled, std::shared_ptr<CandidateSampler> sampler,
                 SampledSoftmaxLayerOptions options, Generator& gen);
  std::string extra_repr() const override;

 private:
  void check_hidden(const Tensor& hidden) const;
  Tensor full_loss(const Tensor& hidden, const Tensor& targets, Reduction reduction);

  bool nce_;
  int64_t hidden_, num_classes_, num_sampled_;
  std::shared_ptr<CandidateSampler> sampler_;
  SampledSoftmaxLayerOptions options_;
  Generator sampling_gen_;
};

// The same layer trained with nce_loss: hit removal off unless asked for, labels 1
// on the true columns (NceOptions' defaults).
class Nce : public SampledSoftmax {
 public:
  Nce(int64_t hidden, int64_t num_classes, int64_t num_sampled,
      std::shared_ptr<CandidateSampler> sampler = nullptr, SampledSoftmaxLayerOptions options = {},
      Generator& gen = default_generator())
      : SampledSoftmax("Nce", true, hidden, num_classes, num_sampled, std::move(sampler), options,
                       gen) {}
};

}  // namespace bridle
