// AdaptiveLogSoftmaxWithLoss: parity with PyTorch (fixtures/adaptive_softmax.json,
// written by scripts/make_adaptive_softmax_fixtures.py: output, loss, log_prob,
// predict and every gradient), then the properties that hold for any weights:
// log_prob rows are distributions, loss = -mean(gather(log_prob, y)), predict =
// argmax(log_prob); ignore_index, reductions, a 1-D input, gradient checks, errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../ops/layer_fixtures.h"
#include "../test_util.h"
#include "nn/adaptive_softmax.h"
#include "ops/indexing.h"

namespace bridle {
namespace {

using json = nlohmann::json;
using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;
using testing::expect_matches;
using testing::fixture_tensor;
using testing::grad_opts;

const json& adaptive_fixture() {
  return testing::json_fixture("adaptive_softmax.json",
                               "scripts/make_adaptive_softmax_fixtures.py");
}

Tensor int_tensor(const json& t) {
  return from_vector(t.at("data").get<std::vector<int64_t>>(), t.at("shape").get<Shape>());
}

Tensor ids(const std::vector<int64_t>& values) { return from_vector(values); }

// A module built like the fixture case, with PyTorch's weights copied in by name.
std::unique_ptr<AdaptiveLogSoftmaxWithLoss> module_for(const json& c) {
  AdaptiveLogSoftmaxOptions options;
  options.div_value = c.at("div_value").get<double>();
  options.head_bias = c.at("head_bias").get<bool>();
  auto m = std::make_unique<AdaptiveLogSoftmaxWithLoss>(
      c.at("in_features").get<int64_t>(), c.at("n_classes").get<int64_t>(),
      c.at("cutoffs").get<std::vector<int64_t>>(), options);
  size_t torch_params = 0;
  for (const auto& [key, value] : c.items())
    if (key.rfind("param:", 0) == 0) ++torch_params;
  EXPECT_EQ(m->named_parameters().size(), torch_params);
  for (auto& [name, p] : m->named_parameters()) {
    Tensor value = fixture_tensor(c, "param:" + name);
    EXPECT_TRUE(value.defined()) << "torch has no parameter " << name;
    if (!value.defined()) continue;
    EXPECT_EQ(p.shape(), value.shape()) << name;
    p.copy_(value);
  }
  return m;
}

// The gradient of a parameter, zeros when backward never reached it.
Tensor grad_or_zeros(const Tensor& p) { return p.grad().defined() ? p.grad() : zeros(p.shape()); }

TEST(AdaptiveSoftmax, MatchesTorchFixtures) {
  constexpr double kAtol = 1e-5, kRtol = 1e-5;
  for (const json& c : adaptive_fixture().at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    auto m = module_for(c);
    Tensor x = fixture_tensor(c, "input", /*requires_grad=*/true);
    Tensor y = int_tensor(c.at("target"));

    AdaptiveOutput out = m->forward_with_loss(x, y);
    expect_matches(out.output, c, "output", kAtol, kRtol);
    expect_matches(out.loss, c, "loss", kAtol, kRtol);
    out.loss.backward(/*retain_graph=*/true);
    expect_matches(x.grad(), c, "grad_loss:input", kAtol, kRtol);
    for (auto& [name, p] : m->named_parameters())
      expect_matches(grad_or_zeros(p), c, "grad_loss:" + name, kAtol, kRtol);

    // The gradient of the per-row output, weighted.
    x.zero_grad(/*set_to_none=*/true);
    m->zero_grad(/*set_to_none=*/true);
    out.output.backward(fixture_tensor(c, "weights"));
    expect_matches(x.grad(), c, "grad_output:input", kAtol, kRtol);
    for (auto& [name, p] : m->named_parameters())
      expect_matches(grad_or_zeros(p), c, "grad_output:" + name, kAtol, kRtol);

    // loss() with its default reduction is the same loss and the same gradient.
    x.zero_grad(true);
    m->zero_grad(true);
    Tensor loss = m->loss(x, y);
    expect_matches(loss, c, "loss", kAtol, kRtol);
    loss.backward();
    expect_matches(x.grad(), c, "grad_loss:input", kAtol, kRtol);
    for (auto& [name, p] : m->named_parameters())
      expect_matches(grad_or_zeros(p), c, "grad_loss:" + name, kAtol, kRtol);

    expect_matches(m->log_prob(x.detach()), c, "log_prob", kAtol, kRtol);
    EXPECT_EQ(m->predict(x.detach()).to_int_vector(),
              c.at("predict").at("data").get<std::vector<int64_t>>());
  }
}

TEST(AdaptiveSoftmax, ParameterNamesAndShapesFollowTorch) {
  AdaptiveLogSoftmaxWithLoss m(64, 1000, {100, 400}, {.div_value = 4.0, .head_bias = true});
  std::vector<std::pair<std::string, Shape>> expected = {
      {"head.weight", {102, 64}},     {"head.bias", {102}},         {"tail.0.0.weight", {16, 64}},
      {"tail.0.1.weight", {300, 16}}, {"tail.1.0.weight", {4, 64}}, {"tail.1.1.weight", {600, 4}}};
  auto named = m.named_parameters();
  ASSERT_EQ(named.size(), expected.size());
  for (size_t i = 0; i < named.size(); ++i) {
    EXPECT_EQ(named[i].first, expected[i].first);
    EXPECT_EQ(named[i].second.shape(), expected[i].second) << named[i].first;
  }
  EXPECT_EQ(m.cutoffs(), (std::vector<int64_t>{100, 400, 1000}));
  EXPECT_EQ(m.shortlist_size(), 100);
  EXPECT_EQ(m.n_clusters(), 2);
  EXPECT_EQ(m.head_size(), 102);
  // torch's int(in // div ** (i + 1)) with a fractional div_value: 10 // 1.5 = 6, 10 // 2.25 = 4.
  AdaptiveLogSoftmaxWithLoss odd(10, 30, {10, 20}, {.div_value = 1.5});
  EXPECT_EQ(odd.tail[0]->named_parameters()[0].second.shape(), (Shape{6, 10}));
  EXPECT_EQ(odd.tail[1]->named_parameters()[0].second.shape(), (Shape{4, 10}));
  EXPECT_NE(m.str().find("(tail): ModuleList"), std::string::npos) << m.str();
}

// A random module (bigger weights than the default init, so the distributions are
// far from uniform) and a batch whose targets hit every bucket.
struct RandomCase {
  std::unique_ptr<AdaptiveLogSoftmaxWithLoss> m;
  Tensor x, y;
};

RandomCase random_setup(int64_t B, uint64_t seed, AdaptiveLogSoftmaxOptions options = {}) {
  Generator gen(seed);
  RandomCase s;
  options.div_value = 2.0;
  s.m = std::make_unique<AdaptiveLogSoftmaxWithLoss>(8, 40, std::vector<int64_t>{6, 15, 25},
                                                     options, gen);
  for (Tensor& p : s.m->parameters()) p.copy_(randn(p.shape(), gen));
  s.x = randn({B, 8}, gen, grad_opts());
  std::vector<int64_t> y(B);
  for (int64_t b = 0; b < B; ++b) y[b] = static_cast<int64_t>(gen.next_u64() % 40);
  s.y = ids(y);
  return s;
}

TEST(AdaptiveSoftmax, LogProbRowsAreDistributions) {
  RandomCase s = random_setup(12, 1);
  Tensor lp = s.m->log_prob(s.x);
  ASSERT_EQ(lp.shape(), (Shape{12, 40}));
  expect_close(sum(exp(lp), 1), std::vector<float>(12, 1.0f), 1e-5f, 1e-5f);
}

TEST(AdaptiveSoftmax, LossIsMinusMeanOfGatheredLogProb) {
  RandomCase s = random_setup(32, 2);
  Tensor lp = s.m->log_prob(s.x);
  Tensor expected = -mean(gather(lp, s.y));
  expect_close(s.m->loss(s.x, s.y), expected, 1e-5f, 1e-5f);
  AdaptiveOutput out = s.m->forward_with_loss(s.x, s.y);
  expect_close(out.output, gather(lp, s.y), 1e-5f, 1e-5f);
  expect_close(out.loss, expected, 1e-5f, 1e-5f);
  // The gradients agree too (log_prob is differentiable).
  Tensor via_log_prob = s.x.detach().set_requires_grad();
  (-mean(gather(s.m->log_prob(via_log_prob), s.y))).backward();
  s.m->loss(s.x, s.y).backward();
  expect_close(s.x.grad(), via_log_prob.grad(), 1e-5f, 1e-4f);
}

TEST(AdaptiveSoftmax, PredictIsArgmaxOfLogProb) {
  for (float cluster_bias : {0.0f, 2.0f, 50.0f}) {
    RandomCase s = random_setup(64, 3, {.head_bias = true});
    // A larger bias on the cluster columns of the head sends more rows past the
    // shortlist shortcut (50: every row).
    Tensor& bias = s.m->head->bias;
    for (int64_t i = 0; i < s.m->n_clusters(); ++i)
      bias.set({s.m->shortlist_size() + i}, bias.at({s.m->shortlist_size() + i}) + cluster_bias);
    Tensor expected = argmax(s.m->log_prob(s.x), 1);
    EXPECT_EQ(s.m->predict(s.x).to_int_vector(), expected.to_int_vector()) << cluster_bias;
  }
}

TEST(AdaptiveSoftmax, Reductions) {
  RandomCase s = random_setup(16, 4);
  AdaptiveOutput out = s.m->forward_with_loss(s.x, s.y);
  Tensor none = s.m->loss(s.x, s.y, Reduction::kNone);
  ASSERT_EQ(none.shape(), (Shape{16}));
  expect_close(none, -out.output, 1e-6f, 1e-6f);
  expect_close(s.m->loss(s.x, s.y, Reduction::kSum), sum(none), 1e-5f, 1e-5f);
  expect_close(s.m->loss(s.x, s.y, Reduction::kMean), mean(none), 1e-5f, 1e-5f);
  // kSum's gradient is B times kMean's.
  Tensor x2 = s.x.detach().set_requires_grad();
  s.m->loss(s.x, s.y, Reduction::kSum).backward();
  s.m->loss(x2, s.y, Reduction::kMean).backward();
  expect_close(s.x.grad(), x2.grad() * 16.0f, 1e-5f, 1e-5f);
}

TEST(AdaptiveSoftmax, IgnoreIndexSkipsRows) {
  RandomCase s = random_setup(6, 5);
  std::vector<int64_t> y = s.y.to_int_vector();
  y[1] = y[4] = -100;
  Tensor targets = ids(y);
  AdaptiveOutput out = s.m->forward_with_loss(s.x, targets);
  std::vector<float> o = out.output.to_vector();
  EXPECT_EQ(o[1], 0.0f);
  EXPECT_EQ(o[4], 0.0f);
  // The kept rows alone give the same loss, over 4 rows.
  Tensor kept_rows = ids({0, 2, 3, 5});
  Tensor kept = s.m->loss(index_select(s.x.detach(), kept_rows), index_select(targets, kept_rows));
  expect_close(out.loss, kept, 1e-6f, 1e-6f);
  expect_close(s.m->loss(s.x, targets, Reduction::kSum), kept * 4.0f, 1e-5f, 1e-5f);
  out.loss.backward();
  std::vector<float> g = s.x.grad().to_vector();
  for (int64_t j = 0; j < 8; ++j) {
    EXPECT_EQ(g[1 * 8 + j], 0.0f);
    EXPECT_EQ(g[4 * 8 + j], 0.0f);
  }
  // A custom ignore_index inside the class range (a padding id of 0).
  RandomCase p = random_setup(4, 6, {.ignore_index = 0});
  Tensor with_pad = ids({0, 7, 0, 30});
  Tensor expected = p.m->loss(index_select(p.x.detach(), ids({1, 3})), ids({7, 30}));
  expect_close(p.m->loss(p.x, with_pad), expected, 1e-6f, 1e-6f);
  // Every row ignored: loss 0 and a zero gradient (mean and sum alike).
  Tensor all_ignored = ids({0, 0, 0, 0});
  for (Reduction r : {Reduction::kMean, Reduction::kSum}) {
    p.x.zero_grad(true);
    Tensor zero = p.m->loss(p.x, all_ignored, r);
    EXPECT_EQ(zero.item(), 0.0f);
    zero.backward();
    for (float v : p.x.grad().to_vector()) EXPECT_EQ(v, 0.0f);
  }
  AdaptiveOutput none = p.m->forward_with_loss(p.x, all_ignored);
  EXPECT_EQ(none.loss.item(), 0.0f);
  for (float v : none.output.to_vector()) EXPECT_EQ(v, 0.0f);
}

TEST(AdaptiveSoftmax, UnbatchedInputAndInt32Targets) {
  RandomCase s = random_setup(5, 7);
  AdaptiveOutput batch = s.m->forward_with_loss(s.x, s.y);
  const int64_t y3 = s.y.to_int_vector()[3];
  AdaptiveOutput one = s.m->forward_with_loss(index_select(s.x, ids({3})).reshape({8}),
                                              from_vector(std::vector<int64_t>{y3}).reshape({}));
  EXPECT_EQ(one.output.dim(), 0);
  EXPECT_NEAR(one.output.item(), batch.output.to_vector()[3], 1e-6);
  EXPECT_NEAR(one.loss.item(), -batch.output.to_vector()[3], 1e-6);
  Tensor y32 = s.y.to(DType::kInt32);
  expect_close(s.m->forward_with_loss(s.x, y32).output, batch.output, 0, 0);
}

TEST(AdaptiveSoftmax, Gradcheck) {
  // A tiny config, one ignored row: every input and weight, through the loss, the
  // per-row output and log_prob. The weights are swapped for gradcheck's leaves.
  RandomCase s = random_setup(7, 8, {.head_bias = true});
  std::vector<int64_t> y = s.y.to_int_vector();
  y[2] = -100;
  Tensor targets = ids(y);
  std::vector<Tensor*> slots = {&s.m->head->weight, &s.m->head->bias};
  for (auto& cluster : s.m->tail)
    for (auto& [name, child] : cluster->named_children())
      slots.push_back(&std::dynamic_pointer_cast<Linear>(child)->weight);
  std::vector<Tensor> inputs = {s.x};
  for (Tensor* slot : slots) inputs.push_back(*slot);
  auto bind = [&](const std::vector<Tensor>& in) {
    for (size_t k = 0; k < slots.size(); ++k) *slots[k] = in[k + 1];
  };
  AdaptiveLogSoftmaxWithLoss& m = *s.m;
  for (Reduction r : {Reduction::kMean, Reduction::kSum, Reduction::kNone})
    expect_gradcheck(
        [&](auto& in) {
          bind(in);
          return m.loss(in[0], targets, r);
        },
        inputs);
  expect_gradcheck(
      [&](auto& in) {
        bind(in);
        return m.forward_with_loss(in[0], targets).output;
      },
      inputs);
  expect_gradcheck(
      [&](auto& in) {
        bind(in);
        return m.log_prob(in[0]);
      },
      inputs);
}

TEST(AdaptiveSoftmax, ConstructorErrors) {
  for (const auto& cutoffs :
       std::vector<std::vector<int64_t>>{{12, 5}, {5, 5, 12}, {0, 5}, {5, 20}, {5, 25}, {}})
    expect_error([&] { AdaptiveLogSoftmaxWithLoss(8, 20, cutoffs); },
                 {"AdaptiveLogSoftmaxWithLoss", "cutoffs", "unique, positive", "n_classes-1 = 19"});
  expect_error(
      [&] {
        AdaptiveLogSoftmaxWithLoss(8, 20, {5, 12}, {.div_value = 4.0});
      },
      {"AdaptiveLogSoftmaxWithLoss", "cluster 1", "8 / 4^2"});
  expect_error([&] { AdaptiveLogSoftmaxWithLoss(8, 20, {5}, {.div_value = -1.0}); },
               {"div_value must be positive"});
}

TEST(AdaptiveSoftmax, InputAndTargetErrors) {
  RandomCase s = random_setup(4, 9);
  AdaptiveLogSoftmaxWithLoss& m = *s.m;
  expect_error(
      [&] {
        m.loss(s.x, ids({1, 2, 40, 3}));
      },
      {"AdaptiveLogSoftmaxWithLoss", "target 40 at row 2", "[0, 39]"});
  expect_error([&] { m.loss(s.x, ids({1, -5, 2, 3})); }, {"target -5 at row 1"});
  expect_error(
      [&] {
        m.forward_with_loss(s.x, ids({1, 2, 3}));
      },
      {"same size in the batch dimension", "[4, 8]", "[3]"});
  expect_error(
      [&] {
        m.loss(zeros({4, 2, 8}), ids({1, 2, 3, 4}));
      },
      {"1D target tensor expects 2D input tensors", "[4, 2, 8]"});
  expect_error([&] { m.loss(s.x, from_vector(std::vector<int64_t>{1}).reshape({})); },
               {"0D target tensor expects 1D input tensors", "[4, 8]"});
  expect_error(
      [&] {
        m.loss(s.x, from_vector(std::vector<int64_t>{1, 2, 3, 4}, {2, 2}));
      },
      {"0D or 1D target tensor expected", "[2, 2]"});
  expect_error([&] { m.loss(zeros({4, 7}), ids({1, 2, 3, 4})); }, {"in_features = 8", "[4, 7]"});
  expect_error([&] { m.loss(s.x, zeros({4})); }, {"int32 or int64", "float32"});
  expect_error([&] { m.log_prob(zeros({4, 7})); }, {"log_prob", "[B, 8]", "[4, 7]"});
  expect_error([&] { m.predict(zeros({8})); }, {"predict", "[B, 8]", "[8]"});
  expect_error([&] { m.forward(s.x); }, {"forward_with_loss"});
}

}  // namespace
}  // namespace bridle
