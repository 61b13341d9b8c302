// Candidate samplers for sampled softmax and NCE (ops/sampled_softmax.h): they
// draw the negative classes a sampled loss looks at, and say how often each class
// is expected among them, the Q in the losses' logit - log(Q) correction.
//
// These follow TensorFlow's RangeSampler family (tensorflow/core/kernels/
// range_sampler.cc) over the classes [0, V), V = range_max:
//   UniformSampler         P(c) = 1 / V
//   LogUniformSampler      P(c) = (log(c + 2) - log(c + 1)) / log(V + 1)   (Zipfian; the
//                          ids must be sorted by decreasing frequency, id 0 the most frequent)
//   FixedUnigramSampler    P(c) = count_c^distortion / sum_k count_k^distortion
//                          (distortion 0.75 as in word2vec; 1 is the plain unigram)
//   LearnedUnigramSampler  P(c) = n_c / sum_k n_k, n_c = 1 + the times c was seen as a
//                          true class (every class starts at 1, so none has P = 0)
//
// sample(S, unique, gen) draws S ids. Without unique they are S independent draws
// (repeats possible). With unique, draws continue until S distinct ids are seen
// (rejection: a repeat is thrown away and counted as a try). num_tries is the
// number of draws taken, and the expected count of a class c is TensorFlow's
//   num_tries == S:  Q(c) = S P(c)                               (always so without unique)
//   otherwise:       Q(c) = 1 - (1 - P(c))^num_tries = -expm1(num_tries log1p(-P(c)))
// (the chance that c turns up in num_tries draws). Both the sampled ids' counts and
// the true classes' counts (expected_count) use the same S and num_tries.
//
// Randomness comes only from the Generator passed in, so a seed fixes the draws.
// The learned sampler changes only in update(), which draw() calls after sampling
// and computing the expected counts, with the batch's true classes: the order of
// TensorFlow's LearnedUnigramCandidateSampler op (the counts used for a batch are
// those from before it). sample() and expected_count() never update.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/factory.h"
#include "core/tensor.h"
#include "ops/sampled_softmax.h"

namespace bridle {

// One sample set: S ids and their expected counts.
struct CandidateSample {
  Tensor ids;              // int64 [S], each in [0, V)
  Tensor expected_counts;  // float32 [S]: Q(ids[s]) by the formula above
  int64_t num_tries = 0;   // draws taken: S without unique, >= S with it
};

class CandidateSampler {
 public:
  explicit CandidateSampler(int64_t range_max);
  virtual ~CandidateSampler() = default;

  int64_t range_max() const { return range_max_; }
  virtual std::string name() const = 0;
  // P(c) for c in [0, V); throws for c outside.
  virtual double probability(int64_t c) const = 0;
  // How many classes have P(c) > 0: the most a unique sample can hold.
  virtual int64_t num_possible() const { return range_max_; }

  // Draws num_sampled ids (>= 1; with unique, at most num_possible()).
  CandidateSample sample(int64_t num_sampled, bool unique, Generator& gen) const;
  // Q(c) for each id (any shape; the result is float32 of the same shape), for a
  // sample of num_sampled ids that took num_tries draws.
  Tensor expected_count(const Tensor& ids, int64_t num_tries, int64_t num_sampled) const;
  // The formula itself.
  static double expected_count(double p, int64_t num_tries, int64_t num_sampled);

  // sample(), then the true classes' expected counts, packed for the losses; then
  // update(true_ids). true_ids: int32/int64 [B] or [B, num_true].
  SampledValues draw(const Tensor& true_ids, int64_t num_sampled, bool unique, Generator& gen);
  // Learns from observed true classes (LearnedUnigramSampler); the others ignore it.
  virtual void update(const Tensor& /*true_ids*/) {}

 protected:
  // One draw from P, in [0, V).
  virtual int64_t sample_one(Generator& gen) const = 0;
  void check_class(int64_t c) const;

 private:
  int64_t range_max_;
};

class UniformSampler : public CandidateSampler {
 public:
  explicit UniformSampler(int64_t range_max) : CandidateSampler(range_max) {}
  std::string name() const override { return "UniformSampler"; }
  double probability(int64_t c) const override;

 protected:
  int64_t sample_one(Generator& gen) const override;
};

class LogUniformSampler : public CandidateSampler {
 public:
  explicit LogUniformSampler(int64_t range_max);
  std::string name() const override { return "LogUniformSampler"; }
  double probability(int64_t c) const override;

 protected:
  // floor(exp(u log(V + 1))) - 1 for u uniform in [0, 1): inverts the CDF
  // P(X <= c) = log(c + 2) / log(V + 1).
  int64_t sample_one(Generator& gen) const override;

 private:
  double log_range_;  // log(V + 1)
};

// Samples from fixed weights by binary search in their running sum.
class FixedUnigramSampler : public CandidateSampler {
 public:
  // counts: [V] non-negative, finite, not all 0 (after distortion).
  explicit FixedUnigramSampler(const std::vector<double>& counts, double distortion = 1.0);
  std::string name() const override { return "FixedUnigramSampler"; }
  double probability(int64_t c) const override;
  int64_t num_possible() const override { return num_possible_; }

 protected:
  int64_t sample_one(Generator& gen) const override;

 private:
  std::vector<double> weights_;     // count^distortion
  std::vector<double> cumulative_;  // running sums of weights_
  int64_t num_possible_ = 0;
};

class LearnedUnigramSampler : public CandidateSampler {
 public:
  explicit LearnedUnigramSampler(int64_t range_max);
  std::string name() const override { return "LearnedUnigramSampler"; }
  double probability(int64_t c) const override;
  // n_c += 1 for every occurrence of c in true_ids (ids out of range are an error).
  void update(const Tensor& true_ids) override;
  const std::vector<int64_t>& counts() const { return counts_; }

 protected:
  int64_t sample_one(Generator& gen) const override;

 private:
  std::vector<int64_t> counts_;      // n_c, all 1 at first
  std::vector<int64_t> cumulative_;  // running sums of counts_, rebuilt by update()
};

}  // namespace bridle
