// Sampled softmax and NCE: the candidate samplers (formulas, statistics, seeds),
// the fused losses against a re-implementation of TensorFlow's
// _compute_sampled_logits (tests/fixtures/sampled_softmax.json, made by
// scripts/make_sampled_softmax_fixtures.py), naive vs fast kernels, gradient
// checks, the all-classes-sampled case against the full softmax, errors, and the
// SampledSoftmax / Nce layers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "../test_util.h"
#include "nn/candidate_sampler.h"
#include "nn/sampled_softmax.h"
#include "ops/sampled_softmax.h"

namespace bridle {
namespace {

using json = nlohmann::json;
using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;
using testing::grad_opts;

const json& fixtures() {
  return testing::json_fixture("sampled_softmax.json", "scripts/make_sampled_softmax_fixtures.py");
}

Tensor ids(const std::vector<int64_t>& v, const Shape& shape = {}) { return from_vector(v, shape); }

std::unique_ptr<CandidateSampler> make_sampler(const json& c) {
  const std::string kind = c.at("kind");
  const int64_t V = c.at("range_max");
  if (kind == "uniform") return std::make_unique<UniformSampler>(V);
  if (kind == "log_uniform") return std::make_unique<LogUniformSampler>(V);
  if (kind == "fixed_unigram")
    return std::make_unique<FixedUnigramSampler>(c.at("counts").get<std::vector<double>>(),
                                                 c.at("distortion").get<double>());
  auto learned = std::make_unique<LearnedUnigramSampler>(V);
  learned->update(ids(c.at("updates").get<std::vector<int64_t>>()));
  return learned;
}

// --- Samplers --------------------------------------------------------------------

TEST(CandidateSampler, FormulasMatchFixture) {
  for (const json& c : fixtures().at("samplers")) {
    SCOPED_TRACE(c.at("kind").get<std::string>() +
                 " V=" + std::to_string(c.at("range_max").get<int64_t>()));
    auto sampler = make_sampler(c);
    const auto id = c.at("ids").get<std::vector<int64_t>>();
    const auto p = c.at("probability").get<std::vector<double>>();
    for (size_t i = 0; i < id.size(); ++i)
      EXPECT_NEAR(sampler->probability(id[i]), p[i], 1e-12 + 1e-12 * p[i]) << "id " << id[i];
    const int64_t S = c.at("num_sampled");
    for (const auto& [tries, expected] : c.at("expected_count").items()) {
      const Tensor q = sampler->expected_count(ids(id), std::stoll(tries), S);
      expect_close(q, expected.get<std::vector<float>>(), 0.0f, 2e-6f);
    }
  }
}

TEST(CandidateSampler, LogUniformIsZipfian) {
  const int64_t V = 1000;
  LogUniformSampler sampler(V);
  double total = 0.0;
  for (int64_t c = 0; c < V; ++c) total += sampler.probability(c);
  EXPECT_NEAR(total, 1.0, 1e-12);  // the sum telescopes to log(V + 1) / log(V + 1)
  EXPECT_NEAR(sampler.probability(0), std::log(2.0) / std::log(1001.0), 1e-15);
  for (int64_t c = 1; c < V; ++c) EXPECT_LT(sampler.probability(c), sampler.probability(c - 1));
  // The unique formula is the chance of at least one c in num_tries draws.
  const double p = sampler.probability(3);
  EXPECT_NEAR(CandidateSampler::expected_count(p, 20, 10), 1.0 - std::pow(1.0 - p, 20), 1e-14);
  EXPECT_DOUBLE_EQ(CandidateSampler::expected_count(p, 10, 10), 10.0 * p);
}

// Empirical frequencies over many non-unique draws are within 5 standard errors of P(c).
void expect_frequencies(const CandidateSampler& sampler, uint64_t seed) {
  SCOPED_TRACE(sampler.name());
  const int64_t V = sampler.range_max(), draws = 200000;
  Generator gen(seed);
  CandidateSample s = sampler.sample(draws, /*unique=*/false, gen);
  EXPECT_EQ(s.num_tries, draws);
  std::vector<int64_t> hits(V, 0);
  for (int64_t c : s.ids.to_int_vector()) {
    ASSERT_GE(c, 0);
    ASSERT_LT(c, V);
    ++hits[c];
  }
  for (int64_t c = 0; c < V; ++c) {
    const double p = sampler.probability(c);
    const double sigma = std::sqrt(p * (1.0 - p) / static_cast<double>(draws));
    EXPECT_NEAR(static_cast<double>(hits[c]) / draws, p, 5.0 * sigma + 1e-12) << "class " << c;
  }
}

TEST(CandidateSampler, EmpiricalFrequenciesMatchProbabilities) {
  expect_frequencies(UniformSampler(13), 1);
  expect_frequencies(LogUniformSampler(40), 2);
  expect_frequencies(FixedUnigramSampler({5, 0, 3, 10, 1, 7, 0.5}, 0.75), 3);
  LearnedUnigramSampler learned(6);
  learned.update(ids({1, 1, 1, 3, 4, 1, 5, 5}));
  expect_frequencies(learned, 4);
}

TEST(CandidateSampler, SeededUniqueSamples) {
  LogUniformSampler sampler(500);
  Generator a(7), b(7), c(8);
  CandidateSample sa = sampler.sample(64, true, a), sb = sampler.sample(64, true, b);
  CandidateSample sc = sampler.sample(64, true, c);
  EXPECT_EQ(sa.ids.to_int_vector(), sb.ids.to_int_vector());
  EXPECT_EQ(sa.num_tries, sb.num_tries);
  EXPECT_NE(sa.ids.to_int_vector(), sc.ids.to_int_vector());
  std::vector<int64_t> v = sa.ids.to_int_vector();
  EXPECT_EQ(std::set<int64_t>(v.begin(), v.end()).size(), v.size());  // no repeats
  EXPECT_GT(sa.num_tries, 64);  // the head of a Zipfian repeats within 64 draws
  // Each sampled id's count is the unique formula at the tries it took.
  std::vector<float> q = sa.expected_counts.to_vector();
  for (size_t i = 0; i < v.size(); ++i)
    EXPECT_FLOAT_EQ(q[i], static_cast<float>(-std::expm1(static_cast<double>(sa.num_tries) *
                                                         std::log1p(-sampler.probability(v[i])))));
  // Every class, uniquely: a permutation.
  UniformSampler small(9);
  CandidateSample all = small.sample(9, true, a);
  std::vector<int64_t> sorted = all.ids.to_int_vector();
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, arange(9, DType::kInt64).to_int_vector());
  // Without unique: S draws, counts S P(c).
  CandidateSample plain = sampler.sample(10, false, a);
  EXPECT_EQ(plain.num_tries, 10);
  expect_close(plain.expected_counts,
               sampler.expected_count(plain.ids, /*num_tries=*/10, /*num_sampled=*/10), 0, 0);
}

TEST(CandidateSampler, LearnedUnigramUpdatesAfterTheDraw) {
  LearnedUnigramSampler sampler(4);
  Generator gen(1);
  Tensor y = ids({2, 2, 3});
  SampledValues v = sampler.draw(y, 2, /*unique=*/false, gen);
  // The batch's counts come from the distribution before its own update: P = 1/4.
  expect_close(v.true_expected_count, {0.5f, 0.5f, 0.5f}, 0, 0);
  EXPECT_EQ(sampler.counts(), (std::vector<int64_t>{1, 1, 3, 2}));
  EXPECT_DOUBLE_EQ(sampler.probability(2), 3.0 / 7.0);
  // sample() and expected_count() never learn.
  sampler.sample(3, true, gen);
  sampler.expected_count(y, 3, 3);
  EXPECT_EQ(sampler.counts(), (std::vector<int64_t>{1, 1, 3, 2}));
}

TEST(CandidateSampler, ErrorsNameTheProblem) {
  Generator gen(0);
  UniformSampler uniform(5);
  expect_error([&] { uniform.sample(6, true, gen); }, {"UniformSampler", "6 unique", "5 classes"});
  EXPECT_NO_THROW(uniform.sample(6, false, gen));
  expect_error([&] { uniform.sample(0, false, gen); }, {"num_sampled must be >= 1"});
  FixedUnigramSampler unigram({1, 0, 2}, 0.75);
  EXPECT_EQ(unigram.num_possible(), 2);
  expect_error([&] { unigram.sample(3, true, gen); }, {"3 unique", "2 with non-zero"});
  expect_error([&] { (void)FixedUnigramSampler({1, -1}); }, {"count -1", "class 1"});
  expect_error([&] { (void)FixedUnigramSampler({0, 0}); }, {"sum to 0"});
  expect_error([&] { (void)FixedUnigramSampler({1, 2}, -0.5); }, {"distortion"});
  expect_error([&] { uniform.probability(5); }, {"class 5", "5 classes"});
  expect_error([&] { uniform.expected_count(ids({1, 7}), 2, 2); }, {"class id 7", "position 1"});
  expect_error([&] { uniform.expected_count(ids({1}), 1, 2); }, {"num_tries >= num_sampled"});
  LearnedUnigramSampler learned(3);
  expect_error([&] { learned.update(ids({0, 3})); }, {"LearnedUnigramSampler", "class id 3"});
  expect_error([&] { (void)LogUniformSampler(0); }, {"range_max", "got 0"});
}

// --- The losses against the fixture -------------------------------------------------

struct FixtureCase {
  std::string name, loss;
  int64_t V, d, B, T;
  Tensor weight, bias, hidden, labels;
  SampledValues sampled;
  bool remove, subtract, divide_true_labels;
};

FixtureCase load_case(const json& c) {
  FixtureCase f;
  f.name = c.at("name");
  f.loss = c.at("loss");
  f.V = c.at("V");
  f.d = c.at("d");
  f.B = c.at("B");
  f.T = c.at("num_true");
  auto vec = [&](const char* key) { return c.at(key).get<std::vector<float>>(); };
  f.weight = from_vector(vec("weight"), {f.V, f.d}, grad_opts());
  f.bias = c.at("has_bias").get<bool>() ? from_vector(vec("bias"), {f.V}, grad_opts()) : Tensor();
  f.hidden = from_vector(vec("hidden"), {f.B, f.d}, grad_opts());
  f.labels = ids(c.at("labels").get<std::vector<int64_t>>(), {f.B, f.T});
  f.sampled.ids = ids(c.at("sampled_ids").get<std::vector<int64_t>>());
  f.sampled.true_expected_count = from_vector(vec("true_expected_count"), {f.B, f.T});
  f.sampled.sampled_expected_count = from_vector(vec("sampled_expected_count"));
  f.remove = c.at("remove_accidental_hits");
  f.subtract = c.at("subtract_log_q");
  f.divide_true_labels = c.at("divide_true_labels");
  return f;
}

Tensor run_loss(const FixtureCase& f, Reduction reduction) {
  if (f.loss == "nce") {
    NceOptions o;
    o.num_true = f.T;
    o.remove_accidental_hits = f.remove;
    o.subtract_log_q = f.subtract;
    o.reduction = reduction;
    o.divide_true_labels = f.divide_true_labels;
    return nce_loss(f.weight, f.bias, f.hidden, f.labels, f.sampled, o);
  }
  SampledSoftmaxOptions o;
  o.num_true = f.T;
  o.remove_accidental_hits = f.remove;
  o.subtract_log_q = f.subtract;
  o.reduction = reduction;
  return sampled_softmax_loss(f.weight, f.bias, f.hidden, f.labels, f.sampled, o);
}

void check_fixture_cases(const std::string& loss) {
  int cases = 0;
  for (const json& c : fixtures().at("loss_cases")) {
    if (c.at("loss") != loss) continue;
    ++cases;
    SCOPED_TRACE(c.at("name").get<std::string>());
    FixtureCase f = load_case(c);
    const auto rows = c.at("loss_per_row").get<std::vector<float>>();
    expect_close(run_loss(f, Reduction::kNone), rows, 1e-5f, 1e-5f);
    float total = 0.0f;
    for (float r : rows) total += r;
    expect_close(run_loss(f, Reduction::kSum), {total}, 1e-5f, 1e-5f);
    Tensor mean = run_loss(f, Reduction::kMean);
    expect_close(mean, {total / static_cast<float>(f.B)}, 1e-5f, 1e-5f);
    mean.backward();
    expect_close(f.weight.grad(), c.at("grad_weight").get<std::vector<float>>(), 1e-6f, 1e-5f);
    expect_close(f.hidden.grad(), c.at("grad_hidden").get<std::vector<float>>(), 1e-6f, 1e-5f);
    if (f.bias.defined())
      expect_close(f.bias.grad(), c.at("grad_bias").get<std::vector<float>>(), 1e-6f, 1e-5f);
  }
  EXPECT_GE(cases, 2);
}

TEST(SampledSoftmax, MatchesTensorFlowFixture) { check_fixture_cases("softmax"); }
TEST(Nce, MatchesTensorFlowFixture) { check_fixture_cases("nce"); }

TEST(SampledSoftmax, FixtureCountsComeFromTheSamplers) {
  // The fixture's expected counts are the samplers' formulas at its num_tries.
  for (const json& c : fixtures().at("loss_cases")) {
    if (c.at("name") != "softmax_unique_hits" && c.at("name") != "softmax_num_true2_repeats")
      continue;
    FixtureCase f = load_case(c);
    LogUniformSampler sampler(f.V);
    const int64_t tries = c.at("num_tries"), S = f.sampled.ids.numel();
    expect_close(sampler.expected_count(f.labels, tries, S), f.sampled.true_expected_count, 0,
                 2e-6f);
    expect_close(sampler.expected_count(f.sampled.ids, tries, S), f.sampled.sampled_expected_count,
                 0, 2e-6f);
  }
}

// --- All classes sampled = the full softmax ------------------------------------------

TEST(SampledSoftmax, AllClassesSampledEqualsFullSoftmax) {
  // With every class sampled once (unique), no log q correction and accidental hits
  // removed, each row's columns are its true classes plus the V - T other classes:
  // exactly the full softmax, with the same gradients.
  const int64_t V = 9, d = 4, B = 6;
  Generator gen(11);
  UniformSampler sampler(V);
  for (int64_t T : {1, 2}) {
    SCOPED_TRACE("num_true=" + std::to_string(T));
    Tensor w = randn({V, d}, gen, grad_opts()), b = randn({V}, gen, grad_opts());
    Tensor h = randn({B, d}, gen, grad_opts());
    std::vector<int64_t> y(B * T);
    for (int64_t i = 0; i < B; ++i)
      for (int64_t t = 0; t < T; ++t) y[i * T + t] = (3 * i + 4 * t) % V;
    Tensor labels = ids(y, {B, T});
    SampledValues sampled;
    sampled.ids = sampler.sample(V, /*unique=*/true, gen).ids;
    SampledSoftmaxOptions o;
    o.num_true = T;
    o.subtract_log_q = false;
    Tensor loss = sampled_softmax_loss(w, b, h, labels, sampled, o);

    Tensor w2 = w.detach().clone().set_requires_grad(), b2 = b.detach().clone().set_requires_grad();
    Tensor h2 = h.detach().clone().set_requires_grad();
    Tensor soft = zeros({B, V});
    for (int64_t i = 0; i < B * T; ++i)
      soft.set({i / T, y[i]}, soft.at({i / T, y[i]}) + 1.0 / static_cast<double>(T));
    Tensor full = T == 1 ? cross_entropy(linear(h2, w2, b2), ids(y))
                         : cross_entropy(linear(h2, w2, b2), soft);
    expect_close(loss, full, 1e-5f, 1e-5f);
    loss.backward();
    full.backward();
    expect_close(w.grad(), w2.grad(), 1e-6f, 1e-4f);
    expect_close(b.grad(), b2.grad(), 1e-6f, 1e-4f);
    expect_close(h.grad(), h2.grad(), 1e-6f, 1e-4f);

    // Without hit removal each true class counts twice and the losses differ.
    o.remove_accidental_hits = false;
    EXPECT_GT(std::abs(sampled_softmax_loss(w, b, h, labels, sampled, o).item() - full.item()),
              1e-3f);
  }
}

// --- Naive vs fast, gradient checks ------------------------------------------------

TEST(SampledSoftmax, FastKernelsMatchNaive) {
  const int64_t V = 300, d = 37, B = 23, T = 3, S = 50, N = T + S;
  Generator gen(5);
  Tensor w = randn({V, d}, gen), bias = randn({V}, gen), h = randn({B, d}, gen);
  std::vector<int64_t> y(B * T), sampled(S);
  for (auto& v : y) v = static_cast<int64_t>(gen.next_u64() % 40);        // rows share classes
  for (auto& v : sampled) v = static_cast<int64_t>(gen.next_u64() % 60);  // repeats, hits
  std::vector<float> true_log_q(B * T), sampled_log_q(S);
  for (auto& v : true_log_q) v = gen.uniform(-3.0f, 1.0f);
  for (auto& v : sampled_log_q) v = gen.uniform(-3.0f, 1.0f);
  for (bool remove : {false, true}) {
    SCOPED_TRACE(remove ? "remove hits" : "keep hits");
    std::vector<float> fast(B * N), naive(B * N), gathered(S * d), scratch(S * d);
    cpu::sampled_logits(fast.data(), gathered.data(), w.data<float>(), bias.data<float>(),
                        h.data<float>(), y.data(), sampled.data(), true_log_q.data(),
                        sampled_log_q.data(), remove, B, T, S, d);
    cpu::sampled_logits_naive(naive.data(), w.data<float>(), bias.data<float>(), h.data<float>(),
                              y.data(), sampled.data(), true_log_q.data(), sampled_log_q.data(),
                              remove, B, T, S, d);
    int64_t masked = 0;
    for (int64_t i = 0; i < B * N; ++i) {
      EXPECT_NEAR(fast[i], naive[i], 1e-4f + 1e-5f * std::abs(naive[i])) << "logit " << i;
      masked += naive[i] == kAccidentalHitLogit;
    }
    EXPECT_EQ(masked > 0, remove);

    for (bool nce : {false, true}) {
      SCOPED_TRACE(nce ? "nce" : "softmax");
      const float true_label = remove ? 1.0f : 1.0f / T;  // NCE's labels, or TensorFlow's
      std::vector<float> loss_f(B), loss_n(B), lse_f(B), lse_n(B), dloss(B), dz(B * N);
      if (nce) {
        cpu::nce_forward(loss_f.data(), fast.data(), true_label, B, T, S);
        cpu::nce_forward_naive(loss_n.data(), fast.data(), true_label, B, T, S);
      } else {
        cpu::sampled_softmax_forward(loss_f.data(), lse_f.data(), fast.data(), B, T, S);
        cpu::sampled_softmax_forward_naive(loss_n.data(), lse_n.data(), fast.data(), B, T, S);
      }
      for (int64_t b = 0; b < B; ++b) {
        EXPECT_NEAR(loss_f[b], loss_n[b], 1e-4f + 1e-5f * std::abs(loss_n[b])) << "row " << b;
        if (!nce) {
          EXPECT_NEAR(lse_f[b], lse_n[b], 1e-5f + 1e-6f * std::abs(lse_n[b]));
        }
      }
      for (auto& g : dloss) g = gen.uniform(-1.0f, 1.0f);
      if (nce)
        cpu::nce_dlogits(dz.data(), fast.data(), dloss.data(), true_label, B, T, S);
      else
        cpu::sampled_softmax_dlogits(dz.data(), fast.data(), lse_f.data(), dloss.data(), B, T, S);
      for (int64_t i = 0; i < B * N; ++i) {  // against the textbook derivative
        const int64_t b = i / N, j = i % N;
        const double z = fast[i];
        const double p = nce ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z - lse_n[b]);
        const double label = j < T ? (nce ? true_label : 1.0 / T) : 0.0;
        EXPECT_NEAR(dz[i], dloss[b] * (p - label), 1e-6) << "dlogit " << i;
      }
      for (int64_t i = 0; i < B * N; ++i)
        if (fast[i] == kAccidentalHitLogit) {
          EXPECT_EQ(dz[i], 0.0f) << "a removed hit, " << i;
        }

      // Backward: both accumulate onto the same non-zero start.
      Tensor start_w = randn({V, d}, gen), start_b = randn({V}, gen), start_h = randn({B, d}, gen);
      Tensor dw_f = start_w.clone(), db_f = start_b.clone(), dh_f = start_h.clone();
      Tensor dw_n = start_w.clone(), db_n = start_b.clone(), dh_n = start_h.clone();
      cpu::sampled_logits_backward(dh_f.data<float>(), dw_f.data<float>(), db_f.data<float>(),
                                   dz.data(), gathered.data(), scratch.data(), w.data<float>(),
                                   h.data<float>(), y.data(), sampled.data(), B, T, S, d);
      cpu::sampled_logits_backward_naive(dh_n.data<float>(), dw_n.data<float>(), db_n.data<float>(),
                                         dz.data(), w.data<float>(), h.data<float>(), y.data(),
                                         sampled.data(), B, T, S, d);
      expect_close(dw_f, dw_n, 1e-5f, 1e-4f);
      expect_close(db_f, db_n, 1e-5f, 1e-4f);
      expect_close(dh_f, dh_n, 1e-5f, 1e-4f);
      // Rows no column touches keep their start.
      std::set<int64_t> touched(y.begin(), y.end());
      touched.insert(sampled.begin(), sampled.end());
      for (int64_t c = 0; c < V; ++c) {
        if (touched.count(c)) continue;
        for (int64_t k = 0; k < d; ++k)
          ASSERT_EQ(dw_f.at({c, k}), start_w.at({c, k})) << "row " << c;
      }
    }
  }
}

// Small problems with hits, a repeated sampled id and a class true in two rows.
struct SmallProblem {
  Tensor w, b, h, labels;
  SampledValues sampled;
};

SmallProblem small_problem(int64_t T, uint64_t seed) {
  const int64_t V = 7, d = 3, B = 3;
  Generator gen(seed);
  SmallProblem p;
  p.w = randn({V, d}, gen, grad_opts());
  p.b = randn({V}, gen, grad_opts());
  p.h = randn({B, d}, gen, grad_opts());
  p.labels = T == 1 ? ids({2, 5, 2}) : ids({2, 0, 5, 6, 2, 1}, {B, 2});
  p.sampled.ids = ids({5, 1, 3, 1, 0});
  LogUniformSampler sampler(V);
  p.sampled.true_expected_count = sampler.expected_count(p.labels, 9, 5);
  p.sampled.sampled_expected_count = sampler.expected_count(p.sampled.ids, 9, 5);
  return p;
}

TEST(SampledSoftmax, Gradcheck) {
  for (int64_t T : {1, 2})
    for (bool remove : {true, false}) {
      SCOPED_TRACE(fmt::format("num_true={} remove={}", T, remove));
      SmallProblem p = small_problem(T, 20 + T);
      SampledSoftmaxOptions o;
      o.num_true = T;
      o.remove_accidental_hits = remove;
      o.reduction = Reduction::kNone;
      expect_gradcheck(
          [&](const std::vector<Tensor>& in) {
            return sampled_softmax_loss(in[0], in[1], in[2], p.labels, p.sampled, o);
          },
          {p.w, p.b, p.h});
      o.reduction = Reduction::kMean;
      expect_gradcheck(
          [&](const std::vector<Tensor>& in) {
            return sampled_softmax_loss(in[0], Tensor(), in[1], p.labels, p.sampled, o);
          },
          {p.w, p.h});
    }
}

TEST(Nce, Gradcheck) {
  for (int64_t T : {1, 2})
    for (bool remove : {false, true}) {
      SCOPED_TRACE(fmt::format("num_true={} remove={}", T, remove));
      SmallProblem p = small_problem(T, 30 + T);
      NceOptions o;
      o.num_true = T;
      o.remove_accidental_hits = remove;
      o.reduction = Reduction::kNone;
      expect_gradcheck(
          [&](const std::vector<Tensor>& in) {
            return nce_loss(in[0], in[1], in[2], p.labels, p.sampled, o);
          },
          {p.w, p.b, p.h});
      o.reduction = Reduction::kSum;
      o.subtract_log_q = false;
      o.divide_true_labels = true;
      expect_gradcheck(
          [&](const std::vector<Tensor>& in) {
            return nce_loss(in[0], in[1], in[2], p.labels, p.sampled, o);
          },
          {p.w, p.b, p.h});
    }
}

TEST(Nce, RemovedHitsAddNothing) {
  // A hit removed from a row is as if that column were not there for that row.
  SmallProblem p = small_problem(1, 40);
  NceOptions o;
  o.remove_accidental_hits = true;
  o.reduction = Reduction::kNone;
  std::vector<float> with_mask = nce_loss(p.w, p.b, p.h, p.labels, p.sampled, o).to_vector();
  // Row 1 (label 5) hits sampled id 5 at position 0: drop that column for row 1.
  SampledValues rest;
  rest.ids = ids({1, 3, 1, 0});
  std::vector<float> q = p.sampled.sampled_expected_count.to_vector();
  rest.sampled_expected_count = from_vector(std::vector<float>(q.begin() + 1, q.end()));
  rest.true_expected_count = p.sampled.true_expected_count;
  std::vector<float> without = nce_loss(p.w, p.b, p.h, p.labels, rest, o).to_vector();
  EXPECT_NEAR(with_mask[1], without[1], 1e-6f);
  EXPECT_GT(std::abs(with_mask[0] - without[0]), 1e-4f);  // row 0 did see id 5
}

// --- Errors ------------------------------------------------------------------------

TEST(SampledSoftmax, ErrorsNameTheProblem) {
  SmallProblem p = small_problem(1, 50);
  SampledSoftmaxOptions o;
  auto call = [&](const Tensor& w, const Tensor& b, const Tensor& h, const Tensor& y,
                  const SampledValues& s) { sampled_softmax_loss(w, b, h, y, s, o); };
  o.num_true = 0;
  expect_error([&] { call(p.w, p.b, p.h, p.labels, p.sampled); },
               {"sampled_softmax_loss", "num_true must be at least 1", "got 0"});
  o.num_true = 2;
  expect_error([&] { call(p.w, p.b, p.h, p.labels, p.sampled); },
               {"labels must be [3, 2]", "got [3]"});
  o.num_true = 1;
  expect_error(
      [&] {
        call(p.w, p.b, p.h, ids({2, 7, 0}), p.sampled);
      },
      {"true class 7", "row 1", "7 classes"});
  expect_error([&] { call(p.w, p.b, p.h, ids({2, -1, 0}), p.sampled); }, {"true class -1"});
  SampledValues bad = p.sampled;
  bad.ids = ids({0, 1, 9, 1, 0});
  expect_error([&] { call(p.w, p.b, p.h, p.labels, bad); },
               {"sampled id 9", "position 2", "7 classes"});
  expect_error(
      [&] {
        call(p.w, p.b, zeros({3, 4}), p.labels, p.sampled);
      },
      {"hidden must be [B, 3]", "[7, 3]", "[3, 4]"});
  expect_error([&] { call(p.w, zeros({6}), p.h, p.labels, p.sampled); }, {"bias must be [7]"});
  expect_error([&] { call(p.w, p.b, p.h, zeros({3}), p.sampled); }, {"int32 or int64"});
  bad = p.sampled;
  bad.sampled_expected_count = ones({4});
  expect_error([&] { call(p.w, p.b, p.h, p.labels, bad); },
               {"sampled_expected_count must be [5]", "[4]"});
  bad = p.sampled;
  bad.true_expected_count = ones({2});
  expect_error([&] { call(p.w, p.b, p.h, p.labels, bad); }, {"true_expected_count", "[3]"});
  bad = p.sampled;
  bad.sampled_expected_count = from_vector({1.0f, 0.0f, 1.0f, 1.0f, 1.0f});
  expect_error([&] { call(p.w, p.b, p.h, p.labels, bad); }, {"> 0", "element 1"});
  bad = p.sampled;
  bad.true_expected_count = Tensor();
  expect_error([&] { call(p.w, p.b, p.h, p.labels, bad); }, {"subtract_log_q needs"});
  o.subtract_log_q = false;  // then the counts are not needed
  EXPECT_NO_THROW(call(p.w, p.b, p.h, p.labels, bad));
  bad.ids = ids({}, {0});
  expect_error([&] { call(p.w, p.b, p.h, p.labels, bad); }, {"S >= 1"});
  expect_error(
      [&] {
        nce_loss(p.w, p.b, p.h, ids({2, 9, 0}), p.sampled);
      },
      {"nce_loss", "true class 9"});
}

// --- The layers ----------------------------------------------------------------------

TEST(SampledSoftmaxLayer, LossLogProbPredict) {
  const int64_t d = 6, V = 40, B = 5;
  Generator init(1);
  SampledSoftmax layer(d, V, 8, nullptr, {}, init);
  EXPECT_EQ(layer.weight.shape(), (Shape{V, d}));
  EXPECT_EQ(layer.bias.shape(), (Shape{V}));
  EXPECT_EQ(layer.named_parameters().size(), 2u);
  EXPECT_EQ(layer.sampler().name(), "LogUniformSampler");
  Generator gen(2);
  layer.bias.copy_(randn({V}, gen));  // a non-zero bias
  Tensor h = randn({B, d}, gen), y = ids({0, 39, 3, 3, 17});

  // Training: a seeded sample per call, so a twin layer with the same seed agrees.
  Generator init2(1);
  SampledSoftmax twin(d, V, 8, nullptr, {}, init2);
  twin.bias.copy_(layer.bias);
  const float first = layer.loss(h, y).item();
  EXPECT_EQ(first, twin.loss(h, y).item());
  EXPECT_NE(first, layer.loss(h, y).item());  // the next call draws a new sample set

  // Exact outputs.
  Tensor logp = layer.log_prob(h);
  EXPECT_EQ(logp.shape(), (Shape{B, V}));
  expect_close(logsumexp(logp, 1), std::vector<float>(B, 0.0f), 1e-5f, 0);
  expect_close(logp, log_softmax(linear(h, layer.weight, layer.bias), 1), 0, 0);
  EXPECT_EQ(layer.predict(h).to_int_vector(),
            argmax(linear(h, layer.weight, layer.bias), 1).to_int_vector());
  EXPECT_EQ(layer.predict(h).dtype(), DType::kInt64);

  // Evaluation: the full softmax cross-entropy, -mean log p(y).
  layer.eval();
  float nll = 0.0f;
  const std::vector<int64_t> targets = y.to_int_vector();
  for (int64_t b = 0; b < B; ++b) nll -= logp.at({b, targets[b]}) / B;
  expect_close(layer.loss(h, y), {nll}, 1e-5f, 1e-5f);
  expect_close(layer.loss(h, y, Reduction::kSum), {nll * B}, 1e-4f, 1e-5f);
  EXPECT_EQ(layer.loss(h, y).item(), layer.loss(h, y).item());  // no sampling in eval
  expect_error([&] { layer.loss(zeros({B, d + 1}), y); }, {"SampledSoftmax", "[B, 6]"});
}

TEST(SampledSoftmaxLayer, NumTrueAndLearnedSampler) {
  const int64_t d = 4, V = 12, B = 3;
  Generator init(3);
  auto sampler = std::make_shared<LearnedUnigramSampler>(V);
  SampledSoftmaxLayerOptions options;
  options.num_true = 2;
  SampledSoftmax layer(d, V, 5, sampler, options, init);
  Tensor h = randn({B, d}, init, grad_opts()), y = ids({1, 2, 2, 2, 11, 0}, {B, 2});
  Tensor loss = layer.loss(h, y);
  loss.backward();
  EXPECT_TRUE(layer.weight.grad().defined());
  EXPECT_TRUE(h.grad().defined());
  EXPECT_EQ(sampler->counts()[2], 4);  // learned from the targets
  layer.eval();
  Tensor logp = layer.log_prob(h.detach());
  const float expected = -(logp.at({0, 1}) + logp.at({0, 2}) + logp.at({1, 2}) + logp.at({1, 2}) +
                           logp.at({2, 11}) + logp.at({2, 0})) /
                         (2.0f * B);
  expect_close(layer.loss(h.detach(), y), {expected}, 1e-5f, 1e-5f);
  EXPECT_EQ(sampler->counts()[2], 4);  // eval does not sample or learn
  expect_error([&] { (void)SampledSoftmax(d, V + 1, 5, sampler); }, {"covers 12 classes", "13"});
  expect_error([&] { (void)SampledSoftmax(d, 4, 5); }, {"5 unique", "4 classes"});
}

TEST(NceLayer, TrainsTowardsTheTargets) {
  // A separable toy problem: class = argmax of the first 10 inputs, V = 10.
  for (bool nce : {false, true}) {
    SCOPED_TRACE(nce ? "Nce" : "SampledSoftmax");
    const int64_t d = 10, V = 10, B = 64;
    Generator gen(4);
    std::shared_ptr<SampledSoftmax> layer =
        nce ? std::make_shared<Nce>(d, V, 4, std::make_shared<UniformSampler>(V),
                                    SampledSoftmaxLayerOptions{}, gen)
            : std::make_shared<SampledSoftmax>(d, V, 4, std::make_shared<UniformSampler>(V),
                                               SampledSoftmaxLayerOptions{}, gen);
    EXPECT_EQ(layer->type_name(), nce ? "Nce" : "SampledSoftmax");
    EXPECT_EQ(layer->is_nce(), nce);
    Tensor x = randn({B, d}, gen) * 2.0f;
    Tensor y = argmax(x, 1);
    SGD sgd(layer->parameters(), SGDOptions{0.5f});
    layer->eval();
    const float before = layer->loss(x, y).item();
    layer->train();
    for (int step = 0; step < 100; ++step) {
      sgd.zero_grad();
      layer->loss(x, y).backward();
      sgd.step();
    }
    layer->eval();
    const float after = layer->loss(x, y).item();
    EXPECT_LT(after, 0.5f * before) << "before " << before;
    int64_t correct = 0;
    std::vector<int64_t> pred = layer->predict(x).to_int_vector(), truth = y.to_int_vector();
    for (int64_t b = 0; b < B; ++b) correct += pred[b] == truth[b];
    EXPECT_GE(correct, B * 8 / 10);
  }
}

}  // namespace
}  // namespace bridle
