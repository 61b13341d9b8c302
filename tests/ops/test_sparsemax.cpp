// sparsemax, 1.5-entmax, alpha-entmax and their Fenchel-Young losses: known
// values, exact zeros, the alpha = 1 / 1.5 / 2 special cases against each other,
// dims, errors and gradient checks. Reference values: test_torch_parity.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;

// Rows with clear margins around their thresholds, so finite differences never
// step across a change of support.
Tensor separated_rows(bool requires_grad = false) {
  Tensor x = from_vector({1.2f, -0.3f, 0.8f, -1.5f, 0.1f, 0.0f, 2.0f, -1.0f, 0.5f, 1.7f}, {2, 5});
  if (requires_grad) x.set_requires_grad();
  return x;
}

TEST(Sparsemax, KnownValuesAndExactZeros) {
  expect_close(sparsemax(from_vector({0.0f, 0.0f})), {0.5f, 0.5f});
  expect_close(sparsemax(from_vector({2.0f, 0.0f})), {1.0f, 0.0f});
  // Row 1: support {1.2, 0.8}, tau = 0.5; row 2: support {2.0, 1.7}, tau = 1.35.
  expect_close(sparsemax(separated_rows()),
               {0.7f, 0.0f, 0.3f, 0.0f, 0.0f, 0.0f, 0.65f, 0.0f, 0.0f, 0.35f}, 1e-6f, 1e-6f);
  for (Tensor p : {sparsemax(separated_rows()), entmax15(separated_rows()),
                   entmax_bisect(separated_rows(), 1.7f)}) {
    Tensor sums = p.sum(1);
    expect_close(sums, {1.0f, 1.0f}, 1e-5f, 0.0f);
    EXPECT_EQ(p.at({0, 3}), 0.0);  // exactly zero, not merely small
  }
}

TEST(Entmax, SpecialCasesAgree) {
  Generator gen(1);
  Tensor x = randn({7, 12}, gen) * 2.0f;
  expect_close(entmax_bisect(x, 2.0f), sparsemax(x), 1e-5f, 1e-5f);
  expect_close(entmax_bisect(x, 1.5f), entmax15(x), 1e-5f, 1e-5f);
  expect_close(entmax_bisect(x, 1.0f), softmax(x, -1), 0.0f, 0.0f);
  expect_close(entmax_bisect(x, 1.001f), softmax(x, -1), 2e-3f, 1e-2f);
  // Along another dim: the same as moving that dim last.
  expect_close(sparsemax(x, 0), transpose(sparsemax(transpose(x, 0, 1)), 0, 1), 0.0f, 0.0f);
}

TEST(Entmax, BadInputsAreErrors) {
  Tensor x = zeros({2, 3});
  x.set({1, 2}, std::nan(""));
  expect_error([&] { sparsemax(x); }, {"sparsemax", "row 1", "nan"});
  expect_error([&] { entmax_bisect(zeros({2, 3}), 0.5f); }, {"alpha", "0.5"});
  expect_error(
      [&] {
        entmax_bisect_loss(zeros({2, 3}), from_vector(std::vector<int64_t>{0, 1}), 1.0f);
      },
      {"alpha", "> 1"});
  expect_error(
      [&] {
        sparsemax_loss(zeros({2, 3}), from_vector(std::vector<int64_t>{0, 3}));
      },
      {"target 3", "row 1"});
  expect_error([&] { sparsemax(zeros({2, 3}), 2); }, {"dim 2"});
}

TEST(FenchelYoungLoss, NonNegativeAndZeroAtTheTarget) {
  Generator gen(2);
  Tensor x = randn({8, 6}, gen) * 3.0f;
  Tensor y = argmax(x, 1);
  for (Tensor rows : {sparsemax_loss(x, y, {.reduction = Reduction::kNone}),
                      entmax15_loss(x, y, {.reduction = Reduction::kNone}),
                      entmax_bisect_loss(x, y, 1.3f, {.reduction = Reduction::kNone})})
    for (int64_t b = 0; b < 8; ++b) EXPECT_GE(rows.at({b}), -1e-5);
  // A confident, correct row has p = e_y: loss 0.
  Tensor sure = from_vector({10.0f, 0.0f, 0.0f}, {1, 3});
  Tensor zero_class = from_vector(std::vector<int64_t>{0});
  EXPECT_NEAR(sparsemax_loss(sure, zero_class).item(), 0.0, 1e-6);
  EXPECT_NEAR(entmax15_loss(sure, zero_class).item(), 0.0, 1e-6);
}

TEST(EntmaxGrad, FiniteDifferences) {
  Tensor x = separated_rows(true);
  expect_gradcheck([](auto& in) { return sparsemax(in[0]); }, {x});
  expect_gradcheck([](auto& in) { return entmax15(in[0]); }, {x});
  expect_gradcheck([](auto& in) { return entmax_bisect(in[0], 1.3f); }, {x});
  expect_gradcheck([](auto& in) { return sparsemax(in[0], 0); }, {x});
  Tensor y = from_vector(std::vector<int64_t>{2, -100});
  for (Reduction r : {Reduction::kNone, Reduction::kMean, Reduction::kSum}) {
    expect_gradcheck([&](auto& in) { return sparsemax_loss(in[0], y, {.reduction = r}); }, {x});
    expect_gradcheck([&](auto& in) { return entmax15_loss(in[0], y, {.reduction = r}); }, {x});
    expect_gradcheck([&](auto& in) { return entmax_bisect_loss(in[0], y, 1.7f, {.reduction = r}); },
                     {x});
  }
}

}  // namespace
}  // namespace bridle
