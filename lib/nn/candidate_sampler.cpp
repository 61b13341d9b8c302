// Candidate samplers; see candidate_sampler.h for the distributions and formulas.
#include "nn/candidate_sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace bridle {

namespace {

// Uniform in [0, 1) from the top 53 bits of one draw: the same on every platform
// (std::uniform_real_distribution's output is implementation-defined).
double uniform01(Generator& gen) { return static_cast<double>(gen.next_u64() >> 11) * 0x1.0p-53; }

// Uniform in [0, n).
int64_t uniform_index(Generator& gen, int64_t n) {
  return std::min<int64_t>(static_cast<int64_t>(uniform01(gen) * static_cast<double>(n)), n - 1);
}

std::vector<int64_t> checked_ids(const char* who, const Tensor& ids, int64_t V) {
  BRIDLE_CHECK(ids.defined() && is_integer(ids.dtype()),
               "{}: class ids must be an int32 or int64 tensor", who);
  std::vector<int64_t> out = ids.to(DType::kInt64).to_int_vector();
  for (size_t i = 0; i < out.size(); ++i)
    BRIDLE_CHECK(out[i] >= 0 && out[i] < V,
                 "{}: class id {} at position {} is out of range for {} classes (valid: 0..{})",
                 who, out[i], i, V, V - 1);
  return out;
}

}  // namespace

CandidateSampler::CandidateSampler(int64_t range_max) : range_max_(range_max) {
  BRIDLE_CHECK(range_max >= 1,
               "CandidateSampler: range_max (the number of classes) must be >= 1, "
               "got {}",
               range_max);
}

void CandidateSampler::check_class(int64_t c) const {
  BRIDLE_CHECK(c >= 0 && c < range_max_, "{}: class {} is out of range for {} classes", name(), c,
               range_max_);
}

double CandidateSampler::expected_count(double p, int64_t num_tries, int64_t num_sampled) {
  if (num_tries == num_sampled) return p * static_cast<double>(num_sampled);
  return -std::expm1(static_cast<double>(num_tries) * std::log1p(-p));
}

CandidateSample CandidateSampler::sample(int64_t num_sampled, bool unique, Generator& gen) const {
  BRIDLE_CHECK(num_sampled >= 1, "{}: num_sampled must be >= 1, got {}", name(), num_sampled);
  BRIDLE_CHECK(!unique || num_sampled <= num_possible(),
               "{}: cannot draw {} unique ids from {} classes{}", name(), num_sampled, range_max_,
               num_possible() < range_max_
                   ? fmt::format(" ({} with non-zero probability)", num_possible())
                   : "");
  CandidateSample out;
  out.ids = Tensor::empty({num_sampled}, DType::kInt64);
  out.expected_counts = Tensor::empty({num_sampled});
  int64_t* ids = out.ids.data<int64_t>();
  if (!unique) {
    for (int64_t s = 0; s < num_sampled; ++s) ids[s] = sample_one(gen);
    out.num_tries = num_sampled;
  } else {
    std::vector<bool> seen(static_cast<size_t>(range_max_), false);
    int64_t picked = 0, tries = 0;
    while (picked < num_sampled) {
      const int64_t c = sample_one(gen);
      ++tries;
      if (seen[c]) continue;
      seen[c] = true;
      ids[picked++] = c;
    }
    out.num_tries = tries;
  }
  float* q = out.expected_counts.data<float>();
  for (int64_t s = 0; s < num_sampled; ++s)
    q[s] = static_cast<float>(expected_count(probability(ids[s]), out.num_tries, num_sampled));
  return out;
}

Tensor CandidateSampler::expected_count(const Tensor& ids, int64_t num_tries,
                                        int64_t num_sampled) const {
  BRIDLE_CHECK(num_sampled >= 1 && num_tries >= num_sampled,
               "{}: expected_count needs num_sampled >= 1 and num_tries >= num_sampled, got {} "
               "and {}",
               name(), num_sampled, num_tries);
  std::vector<int64_t> c = checked_ids(name().c_str(), ids, range_max_);
  Tensor out = Tensor::empty(ids.shape());
  float* q = out.data<float>();
  for (size_t i = 0; i < c.size(); ++i)
    q[i] = static_cast<float>(expected_count(probability(c[i]), num_tries, num_sampled));
  return out;
}

SampledValues CandidateSampler::draw(const Tensor& true_ids, int64_t num_sampled, bool unique,
                                     Generator& gen) {
  checked_ids(name().c_str(), true_ids, range_max_);
  CandidateSample s = sample(num_sampled, unique, gen);
  SampledValues out;
  out.ids = s.ids;
  out.true_expected_count = expected_count(true_ids, s.num_tries, num_sampled);
  out.sampled_expected_count = s.expected_counts;
  update(true_ids);
  return out;
}

// --- Uniform ------------------------------------------------------------------

double UniformSampler::probability(int64_t c) const {
  check_class(c);
  return 1.0 / static_cast<double>(range_max());
}

int64_t UniformSampler::sample_one(Generator& gen) const { return uniform_index(gen, range_max()); }

// --- Log-uniform ----------------------------------------------------------------

LogUniformSampler::LogUniformSampler(int64_t range_max)
    : CandidateSampler(range_max), log_range_(std::log1p(static_cast<double>(range_max))) {}

double LogUniformSampler::probability(int64_t c) const {
  check_class(c);
  const auto x = static_cast<double>(c);
  return (std::log(x + 2.0) - std::log(x + 1.0)) / log_range_;
}

int64_t LogUniformSampler::sample_one(Generator& gen) const {
  const auto value = static_cast<int64_t>(std::exp(uniform01(gen) * log_range_)) - 1;
  return std::clamp<int64_t>(value, 0, range_max() - 1);
}

// --- Fixed unigram ----------------------------------------------------------------

namespace {
int64_t checked_range(const std::vector<double>& counts) {
  BRIDLE_CHECK(!counts.empty(), "FixedUnigramSampler: no counts given");
  return static_cast<int64_t>(counts.size());
}
}  // namespace

FixedUnigramSampler::FixedUnigramSampler(const std::vector<double>& counts, double distortion)
    : CandidateSampler(checked_range(counts)) {
  BRIDLE_CHECK(std::isfinite(distortion) && distortion >= 0.0,
               "FixedUnigramSampler: distortion must be finite and >= 0, got {}", distortion);
  weights_.reserve(counts.size());
  cumulative_.reserve(counts.size());
  double total = 0.0;
  for (size_t c = 0; c < counts.size(); ++c) {
    BRIDLE_CHECK(std::isfinite(counts[c]) && counts[c] >= 0.0,
                 "FixedUnigramSampler: count {} of class {} must be finite and >= 0", counts[c], c);
    const double w = std::pow(counts[c], distortion);
    weights_.push_back(w);
    total += w;
    cumulative_.push_back(total);
    if (w > 0.0) ++num_possible_;
  }
  BRIDLE_CHECK(total > 0.0 && std::isfinite(total),
               "FixedUnigramSampler: the {} weights (count^{}) sum to {}; need a finite sum > 0",
               counts.size(), distortion, total);
}

double FixedUnigramSampler::probability(int64_t c) const {
  check_class(c);
  return weights_[c] / cumulative_.back();
}

int64_t FixedUnigramSampler::sample_one(Generator& gen) const {
  const double u = uniform01(gen) * cumulative_.back();
  auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
  // u rounds up to the total only in the last ulp: take the last class that has weight.
  while (it == cumulative_.end() || weights_[it - cumulative_.begin()] == 0.0) --it;
  return it - cumulative_.begin();
}

// --- Learned unigram ----------------------------------------------------------------

LearnedUnigramSampler::LearnedUnigramSampler(int64_t range_max)
    : CandidateSampler(range_max), counts_(range_max, 1), cumulative_(range_max) {
  for (int64_t c = 0; c < range_max; ++c) cumulative_[c] = c + 1;
}

double LearnedUnigramSampler::probability(int64_t c) const {
  check_class(c);
  return static_cast<double>(counts_[c]) / static_cast<double>(cumulative_.back());
}

void LearnedUnigramSampler::update(const Tensor& true_ids) {
  for (int64_t c : checked_ids("LearnedUnigramSampler::update", true_ids, range_max()))
    ++counts_[c];
  int64_t total = 0;
  for (int64_t c = 0; c < range_max(); ++c) cumulative_[c] = total += counts_[c];
}

int64_t LearnedUnigramSampler::sample_one(Generator& gen) const {
  const int64_t u = uniform_index(gen, cumulative_.back());
  return std::upper_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin();
}

}  // namespace bridle
