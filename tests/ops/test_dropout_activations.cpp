// dropout: identity cases, errors, seeded reproducibility, mean preservation and
// the saved mask in backward. gelu (exact and tanh) and leaky_relu: values,
// errors, gradient checks and parity with PyTorch (fixtures/torch_layers.json).
#include <gtest/gtest.h>

#include <cmath>

#include "../test_util.h"
#include "layer_fixtures.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;

using testing::grad_opts;

// --- dropout --------------------------------------------------------------------

TEST(Dropout, IdentityWhenNotTrainingOrPZero) {
  Generator gen(1);
  Tensor x = randn({4, 5}, gen);
  EXPECT_TRUE(dropout(x, 0.5f, /*training=*/false, gen).same(x));
  EXPECT_TRUE(dropout(x, 0.0f, /*training=*/true, gen).same(x));
}

TEST(Dropout, PEqualOneGivesZerosAndZeroGradient) {
  Generator gen(1);
  Tensor x = randn({3, 4}, gen, grad_opts());
  Tensor y = dropout(x, 1.0f, true, gen);
  expect_close(y, std::vector<float>(12, 0.0f), 0, 0);
  sum(y).backward();
  expect_close(x.grad(), std::vector<float>(12, 0.0f), 0, 0);
}

TEST(Dropout, ProbabilityOutsideZeroOneIsAnError) {
  Generator gen(1);
  Tensor x = ones({3});
  expect_error([&] { dropout(x, -0.1f, true, gen); }, {"dropout", "[0, 1]", "-0.1"});
  expect_error([&] { dropout(x, 1.5f, true, gen); }, {"dropout", "1.5"});
  expect_error([&] { dropout(x, std::nanf(""), false, gen); }, {"dropout", "nan"});
}

TEST(Dropout, SameSeedSameMask) {
  Tensor x = ones({1000});
  Generator a(42), b(42), c(43);
  std::vector<float> ya = dropout(x, 0.3f, true, a).to_vector();
  EXPECT_EQ(ya, dropout(x, 0.3f, true, b).to_vector());
  EXPECT_NE(ya, dropout(x, 0.3f, true, c).to_vector());
  EXPECT_NE(ya, dropout(x, 0.3f, true, a).to_vector());  // the generator moved on
  // The overload without a generator draws from the global one.
  manual_seed(42);
  std::vector<float> g1 = dropout(x, 0.3f).to_vector();
  manual_seed(42);
  EXPECT_EQ(g1, dropout(x, 0.3f).to_vector());
}

TEST(Dropout, KeepsTheMeanAndScalesSurvivors) {
  const int64_t n = 200000;
  const float p = 0.3f;
  Generator gen(7);
  Tensor x = full({n}, 2.0);
  std::vector<float> y = dropout(x, p, true, gen).to_vector();
  int64_t zeros = 0;
  double total = 0.0;
  for (float v : y) {
    if (v == 0.0f)
      ++zeros;
    else
      EXPECT_FLOAT_EQ(v, 2.0f / (1.0f - p));
    total += v;
  }
  // Binomial: the dropped fraction has std sqrt(p (1 - p) / n) ~ 0.001.
  EXPECT_NEAR(static_cast<double>(zeros) / n, p, 0.005);
  EXPECT_NEAR(total / n, 2.0, 0.02);
}

TEST(Dropout, BackwardUsesTheSavedMask) {
  Generator gen(3);
  Tensor x = randn({50}, gen, grad_opts());
  Tensor y = dropout(x, 0.4f, true, gen);
  Tensor w = randn({50}, gen);
  sum(y * w).backward();
  std::vector<float> xv = x.to_vector(), yv = y.to_vector(), wv = w.to_vector();
  std::vector<float> g = x.grad().to_vector();
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_FLOAT_EQ(g[i], yv[i] == 0.0f ? 0.0f : wv[i] / 0.6f) << i;
  // With a generator reseeded on every call the mask is fixed, so the
  // finite differences see the same function.
  expect_gradcheck(
      [](auto& in) {
        Generator g(11);
        return dropout(in[0], 0.4f, true, g);
      },
      {x});
}

// --- gelu and leaky_relu --------------------------------------------------------

TEST(Gelu, ValuesOfBothForms) {
  Tensor x = from_vector({-3.0f, -1.0f, 0.0f, 0.5f, 1.0f, 3.0f});
  // x Phi(x), from the normal CDF.
  std::vector<float> exact;
  for (float v : x.to_vector()) exact.push_back(v * 0.5f * std::erfc(-v / std::sqrt(2.0f)));
  expect_close(gelu(x), exact, 1e-6f, 1e-6f);
  expect_close(gelu(x), {-0.00404969f, -0.15865525f, 0, 0.34573123f, 0.84134475f, 2.99595031f},
               1e-6f, 1e-5f);
  expect_close(gelu(x, "tanh"),
               {-0.00363739f, -0.15880801f, 0, 0.34571401f, 0.84119199f, 2.99636261f}, 1e-6f,
               1e-5f);
  expect_error([&] { gelu(x, "fast"); }, {"gelu", "none", "tanh", "fast"});
}

TEST(LeakyRelu, Values) {
  Tensor x = from_vector({-2.0f, -0.5f, 0.0f, 0.5f, 2.0f});
  expect_close(leaky_relu(x), {-0.02f, -0.005f, 0, 0.5f, 2.0f}, 1e-7f, 1e-6f);
  expect_close(leaky_relu(x, 0.2f), {-0.4f, -0.1f, 0, 0.5f, 2.0f}, 1e-7f, 1e-6f);
  // Gradient at the kink is the slope, as in PyTorch.
  Tensor k = from_vector({0.0f}, {1}, grad_opts());
  sum(leaky_relu(k, 0.2f)).backward();
  expect_close(k.grad(), {0.2f}, 0, 0);
  expect_error([&] { leaky_relu(x, INFINITY); }, {"leaky_relu", "negative_slope", "inf"});
}

TEST(ActivationsGrad, AgainstFiniteDifferences) {
  // Kept 0.1 away from 0, so leaky_relu's kink is outside the finite-difference step.
  Generator gen(5);
  std::vector<float> v = randn({30}, gen).to_vector();
  for (float& e : v) e += e < 0 ? -0.1f : 0.1f;
  Tensor x = from_vector(v, {5, 6}, grad_opts());
  expect_gradcheck([](auto& in) { return gelu(in[0]); }, {x});
  expect_gradcheck([](auto& in) { return gelu(in[0], "tanh"); }, {x});
  expect_gradcheck([](auto& in) { return leaky_relu(in[0]); }, {x});
  expect_gradcheck([](auto& in) { return leaky_relu(in[0], -0.5f); }, {x});
}

TEST(ActivationsParity, MatchesTorch) {
  int checked = 0;
  for (const auto& c : testing::layer_fixture().at("activations")) {
    Tensor x = testing::fixture_tensor(c, "input", true);
    Tensor y = c.at("op") == "gelu" ? gelu(x, c.at("approximate").get<std::string>())
                                    : leaky_relu(x, c.at("negative_slope").get<float>());
    testing::expect_matches(y, c, "output", 1e-6, 1e-5);
    y.backward(testing::fixture_tensor(c, "weights"));
    testing::expect_matches(x.grad(), c, "grad_input", 1e-6, 1e-5);
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

}  // namespace
}  // namespace bridle
