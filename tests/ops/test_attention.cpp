// scaled_dot_product_attention and MultiheadAttention: the formula on a small
// case, masks (keep, additive, causal, all masked), shapes, errors and gradient
// checks. PyTorch values: test_torch_parity.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;

TEST(Attention, OneQueryIsASoftmaxWeightedAverage) {
  // q . k = [0, 1, 2] scaled by 1 / sqrt(1): weights softmax([0, 1, 2]).
  Tensor q = from_vector({1.0f}, {1, 1}), k = from_vector({0.0f, 1.0f, 2.0f}, {3, 1});
  Tensor v = from_vector({10.0f, 20.0f, 30.0f}, {3, 1});
  Tensor w = softmax(from_vector({0.0f, 1.0f, 2.0f}), -1);
  double expected = 10 * w.at({0}) + 20 * w.at({1}) + 30 * w.at({2});
  EXPECT_NEAR(scaled_dot_product_attention(q, k, v).item(), expected, 1e-4);
}

TEST(Attention, MasksAndCausality) {
  Generator gen(1);
  Tensor q = randn({2, 4, 3}, gen), k = randn({2, 4, 3}, gen), v = randn({2, 4, 5}, gen);
  Tensor causal = attention_weights(q, k, {.causal = true});
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = i + 1; j < 4; ++j) EXPECT_EQ(causal.at({1, i, j}), 0.0);
  // A keep-mask that is the lower triangle is the causal mask.
  Tensor tril = zeros({4, 4}, kInt64);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j <= i; ++j) tril.set({i, j}, 1);
  expect_close(attention_weights(q, k, {.mask = tril}), causal, 0.0f, 0.0f);
  // A query with every key masked attends to nothing.
  Tensor none = zeros({4, 4}, kInt64);
  expect_close(scaled_dot_product_attention(q, k, v, {.mask = none}), zeros({2, 4, 5}), 0.0f, 0.0f);
  expect_error([&] { attention_weights(q, randn({2, 4, 2}, gen)); }, {"attention", "[2, 4, 2]"});
  expect_error([&] { attention_weights(q, k, {.mask = ones({3, 3})}); }, {"cannot be broadcast"});
}

TEST(AttentionGrad, FiniteDifferences) {
  Generator gen(2);
  Tensor mask = from_vector({0.0f, -1.0f, 0.5f, -std::numeric_limits<float>::infinity()}, {1, 4});
  expect_gradcheck(
      [&](auto& in) {
        return scaled_dot_product_attention(in[0], in[1], in[2], {.mask = mask, .causal = false});
      },
      {randn({2, 3, 4}, gen).set_requires_grad(), randn({2, 4, 4}, gen).set_requires_grad(),
       randn({2, 4, 2}, gen).set_requires_grad()});
}

TEST(MultiheadAttention, ShapesWeightsAndGradients) {
  Generator gen(3);
  MultiheadAttention mha(8, 2, true, gen);
  EXPECT_EQ(mha.in_proj_weight.shape(), (Shape{24, 8}));
  EXPECT_EQ(mha.num_parameters(), 24 * 8 + 24 + 8 * 8 + 8);
  Tensor x = randn({3, 5, 8}, gen);
  MultiheadAttentionOutput out = mha.forward(x, x, x);
  EXPECT_EQ(out.output.shape(), (Shape{3, 5, 8}));
  EXPECT_EQ(out.weights.shape(), (Shape{3, 5, 5}));
  expect_close(out.weights.sum(2), ones({3, 5}), 1e-5f, 0.0f);
  expect_close(mha.forward(x), out.output, 0.0f, 0.0f);  // self-attention shorthand
  Tensor padding = zeros({3, 5}, kInt64);
  padding.set({0, 4}, 1);  // nonzero = masked out, as nn.MultiheadAttention
  EXPECT_EQ(mha.forward(x, x, x, padding).weights.at({0, 2, 4}), 0.0);
  Tensor small_padding = padding.slice(0, 2);
  expect_gradcheck([&](auto& in) { return mha.forward(in[0], in[0], in[0], small_padding).output; },
                   {randn({2, 5, 8}, gen).set_requires_grad()});
  expect_error([&] { MultiheadAttention(10, 3); }, {"embed_dim 10", "num_heads 3"});
  expect_error(
      [&] {
        mha.forward(x, x, x, zeros({3, 4}, kInt64));
      },
      {"key_padding_mask", "[3, 5]"});
}

}  // namespace
}  // namespace bridle
