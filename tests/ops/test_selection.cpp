// hardmax, topk, gumbel_softmax, safe_softmax and masked_softmax: values, ties,
// dims, the Gumbel-max sampling distribution, straight-through gradients, masked
// rows, errors and gradient checks.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(Hardmax, OneHotOfTheFirstMaximum) {
  Tensor x = from_vector({1.0f, 3.0f, 3.0f, 0.0f, 5.0f, -1.0f, 2.0f, 2.0f}, {2, 4});
  expect_close(hardmax(x), {0, 1, 0, 0, 1, 0, 0, 0}, 0.0f, 0.0f);
  expect_close(hardmax(x, 0), {0, 1, 1, 0, 1, 0, 0, 1}, 0.0f, 0.0f);
  EXPECT_FALSE(hardmax(x.clone().set_requires_grad()).requires_grad());
}

TEST(Topk, ValuesIndicesAndGradient) {
  Tensor x = from_vector({0.5f, 2.0f, -1.0f, 2.0f, 7.0f, 0.0f}, {2, 3});
  auto [values, indices] = topk(x, 2);
  expect_close(values, {2.0f, 0.5f, 7.0f, 2.0f}, 0.0f, 0.0f);
  EXPECT_EQ(indices.to_int_vector(), (std::vector<int64_t>{1, 0, 1, 0}));
  auto [smallest, where] = topk(x, 1, 0, /*largest=*/false);
  expect_close(smallest, {0.5f, 2.0f, -1.0f}, 0.0f, 0.0f);
  EXPECT_EQ(where.to_int_vector(), (std::vector<int64_t>{0, 0, 0}));
  Generator gen(1);
  expect_gradcheck([](auto& in) { return topk(in[0], 2, 1).first; },
                   {randn({3, 5}, gen).set_requires_grad()});
  expect_error([&] { topk(x, 4); }, {"k = 4", "size 3"});
}

TEST(GumbelSoftmax, SamplesFollowTheSoftmax) {
  // Gumbel-max: argmax(logits + g) is distributed as softmax(logits).
  const int64_t draws = 20000;
  Tensor logits = from_vector({1.0f, 0.0f, -1.0f}, {1, 3});
  Tensor repeated = Tensor::empty({draws, 3});
  for (int64_t d = 0; d < draws; ++d)
    for (int64_t c = 0; c < 3; ++c) repeated.set({d, c}, logits.at({0, c}));
  Generator gen(7);
  Tensor frequency = gumbel_softmax(repeated, 1.0f, /*hard=*/true, -1, gen).mean(0);
  Tensor p = softmax(logits, -1);
  for (int64_t c = 0; c < 3; ++c) EXPECT_NEAR(frequency.at({c}), p.at({0, c}), 0.015) << c;
}

TEST(GumbelSoftmax, SeededHardIsOneHotWithTheSoftGradient) {
  Generator gen(2);
  Tensor logits = randn({4, 6}, gen) * 3.0f;
  Generator a(11), b(11), c(11);
  Tensor soft_in = logits.clone().set_requires_grad(), hard_in = logits.clone().set_requires_grad();
  Tensor soft = gumbel_softmax(soft_in, 0.5f, false, -1, a);
  Tensor hard = gumbel_softmax(hard_in, 0.5f, true, -1, b);
  expect_close(gumbel_softmax(logits, 0.5f, false, -1, c), soft, 0.0f, 0.0f);  // reproducible
  expect_close(hard, hardmax(soft.detach()), 1e-6f, 0.0f);
  expect_close(soft.sum(1), {1.0f, 1.0f, 1.0f, 1.0f}, 1e-5f, 0.0f);
  Tensor w = randn({4, 6}, gen);
  (soft * w).sum().backward();
  (hard * w).sum().backward();
  expect_close(hard_in.grad(), soft_in.grad(), 1e-6f, 1e-5f);
  // Extreme logits never give NaN.
  Tensor extreme = from_vector({1e30f, -1e30f, 0.0f}, {1, 3});
  for (float v : gumbel_softmax(extreme, 0.1f).to_vector()) EXPECT_FALSE(std::isnan(v));
  expect_error([&] { gumbel_softmax(logits, 0.0f); }, {"tau", "0"});
}

TEST(GumbelSoftmaxGrad, FiniteDifferencesWithAFixedSample) {
  Generator gen(3);
  expect_gradcheck(
      [](auto& in) {
        Generator fixed(5);  // the same Gumbel noise on every call
        return gumbel_softmax(in[0], 0.7f, false, -1, fixed);
      },
      {randn({2, 4}, gen).set_requires_grad()});
}

TEST(SafeSoftmax, MaskedRowsGiveZerosAndZeroGradient) {
  Tensor x = from_vector({1.0f, 2.0f, 0.5f, -kInf, -kInf, -kInf, 3.0f, -kInf, 1.0f}, {3, 3});
  Tensor xg = x.clone().set_requires_grad();
  Tensor y = safe_softmax(xg);
  expect_close(y.slice(1, 2), {0.0f, 0.0f, 0.0f}, 0.0f, 0.0f);
  Tensor finite = from_vector({1.0f, 2.0f, 0.5f}, {1, 3});
  expect_close(y.slice(0, 1), softmax(finite, -1), 1e-6f, 1e-6f);
  EXPECT_EQ(y.at({2, 1}), 0.0);
  (y * from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3})).sum().backward();
  expect_close(xg.grad().slice(1, 2), {0.0f, 0.0f, 0.0f}, 0.0f, 0.0f);
  for (float v : xg.grad().to_vector()) EXPECT_TRUE(std::isfinite(v));
  Tensor plus_inf = from_vector({kInf, 0.0f}, {1, 2});
  expect_error([&] { safe_softmax(plus_inf); }, {"safe_softmax", "row 0"});
}

TEST(MaskedSoftmax, BooleanAndAdditiveMasks) {
  Generator gen(4);
  Tensor x = randn({2, 4}, gen);
  // Keep-mask (nonzero = keep), broadcast over rows; the second row masks everything.
  Tensor keep = from_vector(std::vector<int64_t>{1, 0, 1, 1, 0, 0, 0, 0}, {2, 4});
  Tensor y = masked_softmax(x, keep);
  EXPECT_EQ(y.at({0, 1}), 0.0);
  EXPECT_NEAR(y.slice(0, 1).sum().item(), 1.0, 1e-6);
  expect_close(y.slice(1, 2), {0.0f, 0.0f, 0.0f, 0.0f}, 0.0f, 0.0f);
  Tensor additive = from_vector({0.0f, -kInf, 0.0f, 0.0f}, {1, 4});
  expect_close(masked_softmax(x, additive).slice(0, 1), y.slice(0, 1), 1e-6f, 1e-6f);
  expect_error([&] { masked_softmax(x, ones({3})); }, {"cannot be broadcast"});
  Tensor partial = from_vector(std::vector<int64_t>{1, 0, 1, 1}, {1, 4});
  expect_gradcheck([&](auto& in) { return masked_softmax(in[0], partial); },
                   {randn({3, 4}, gen).set_requires_grad()});
}

}  // namespace
}  // namespace bridle
