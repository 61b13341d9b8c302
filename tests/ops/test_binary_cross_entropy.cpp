// binary_cross_entropy_with_logits, sigmoid_focal_loss and the softmax focal_loss:
// stable vs textbook kernels, saturated logits, reductions against their
// definitions, errors and gradient checks. PyTorch values: test_torch_parity.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;

using testing::grad_opts;

TEST(BinaryCrossEntropy, StableKernelMatchesTextbookForm) {
  Generator gen(1);
  const int64_t n = 1000;
  Tensor x = randn({n}, gen) * 4.0f, y = rand({n}, gen);
  Tensor w = uniform({n}, 0.5f, 2.0f, gen), pw = uniform({n}, 0.2f, 3.0f, gen);
  for (bool weighted : {false, true}) {
    SCOPED_TRACE(weighted);
    const float* wp = weighted ? w.data<float>() : nullptr;
    const float* pwp = weighted ? pw.data<float>() : nullptr;
    Tensor fast = Tensor::empty({n}), naive = Tensor::empty({n});
    cpu::bce_with_logits_forward(fast.data<float>(), x.data<float>(), y.data<float>(), wp, pwp, n);
    cpu::bce_with_logits_forward_naive(naive.data<float>(), x.data<float>(), y.data<float>(), wp,
                                       pwp, n);
    expect_close(fast, naive, 1e-5f, 1e-5f);
  }
}

TEST(BinaryCrossEntropy, SaturatedLogitsStayExact) {
  // -log sigmoid(-100) = 100 and -log sigmoid(100) = 0 (to float precision): the
  // textbook form would take log(0).
  Tensor x = from_vector({100.0f, -100.0f, 100.0f, -100.0f, 1e4f});
  Tensor y = from_vector({0.0f, 1.0f, 1.0f, 0.0f, 0.0f});
  expect_close(binary_cross_entropy_with_logits(x, y, {.reduction = Reduction::kNone}),
               {100.0f, 100.0f, 0.0f, 0.0f, 1e4f}, 1e-4f, 1e-6f);
  Tensor xg = x.clone().set_requires_grad();
  binary_cross_entropy_with_logits(xg, y, {.reduction = Reduction::kSum}).backward();
  expect_close(xg.grad(), {1.0f, -1.0f, 0.0f, 0.0f, 1.0f}, 1e-6f, 0.0f);
}

TEST(BinaryCrossEntropy, ReductionsAndWeightsFollowTheirDefinitions) {
  Generator gen(2);
  Tensor x = randn({3, 4}, gen), y = rand({3, 4}, gen);
  Tensor w = uniform({3, 1}, 0.5f, 2.0f, gen), pw = uniform({4}, 0.5f, 3.0f, gen);
  Tensor none = binary_cross_entropy_with_logits(
      x, y, {.reduction = Reduction::kNone, .weight = w, .pos_weight = pw});
  ASSERT_EQ(none.shape(), (Shape{3, 4}));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j) {
      double s = 1.0 / (1.0 + std::exp(-x.at({i, j})));
      double expected = -w.at({i, 0}) * (pw.at({j}) * y.at({i, j}) * std::log(s) +
                                         (1 - y.at({i, j})) * std::log(1 - s));
      EXPECT_NEAR(none.at({i, j}), expected, 1e-5);
    }
  EXPECT_NEAR(binary_cross_entropy_with_logits(x, y, {.weight = w, .pos_weight = pw}).item(),
              none.sum().item() / 12.0f, 1e-6);
  EXPECT_NEAR(binary_cross_entropy_with_logits(
                  x, y, {.reduction = Reduction::kSum, .weight = w, .pos_weight = pw})
                  .item(),
              none.sum().item(), 1e-5);
}

TEST(BinaryCrossEntropy, BadInputsAreErrors) {
  Tensor x = zeros({2, 3});
  expect_error(
      [&] {
        binary_cross_entropy_with_logits(x, zeros({3, 2}));
      },
      {"targets", "[3, 2]", "[2, 3]"});
  expect_error(
      [&] {
        binary_cross_entropy_with_logits(x, from_vector(std::vector<int64_t>{0, 1, 0, 1, 0, 1}));
      },
      {"float32", "int64"});
  expect_error(
      [&] {
        binary_cross_entropy_with_logits(x, zeros({2, 3}), {.pos_weight = ones({2})});
      },
      {"pos_weight", "[3]", "[2]"});
  expect_error(
      [&] {
        binary_cross_entropy_with_logits(x, zeros({2, 3}), {.weight = ones({4})});
      },
      {"cannot be broadcast"});
  expect_error(
      [&] {
        binary_cross_entropy_with_logits(x, zeros({2, 3}),
                                         {.weight = ones({3}).set_requires_grad()});
      },
      {"weight", "constant"});
  expect_error([&] { sigmoid_focal_loss(x, zeros({2, 3}), {.gamma = -1.0f}); }, {"gamma", "-1"});
}

TEST(BinaryCrossEntropyGrad, FiniteDifferences) {
  Generator gen(3);
  Tensor x = randn({3, 4}, gen, grad_opts()), y = rand({3, 4}, gen);
  Tensor w = uniform({3, 1}, 0.5f, 2.0f, gen), pw = uniform({4}, 0.5f, 3.0f, gen);
  for (Reduction r : {Reduction::kNone, Reduction::kMean, Reduction::kSum})
    expect_gradcheck(
        [&](auto& in) {
          return binary_cross_entropy_with_logits(in[0], y,
                                                  {.reduction = r, .weight = w, .pos_weight = pw});
        },
        {x});
  expect_gradcheck([&](auto& in) { return sigmoid_focal_loss(in[0], y, {.gamma = 2.0f}); }, {x});
}

TEST(SigmoidFocalLoss, GammaZeroWithoutAlphaIsBinaryCrossEntropy) {
  Generator gen(4);
  Tensor x = randn({5, 3}, gen), y = rand({5, 3}, gen);
  expect_close(sigmoid_focal_loss(x, y, {.alpha = -1.0f, .gamma = 0.0f}),
               binary_cross_entropy_with_logits(x, y, {.reduction = Reduction::kNone}), 1e-6f,
               1e-6f);
}

TEST(FocalLoss, GammaZeroAlphaOneIsCrossEntropy) {
  Generator gen(5);
  Tensor logits = randn({6, 4}, gen) * 2.0f;
  Tensor classes = from_vector(std::vector<int64_t>{0, 3, 1, 1, 2, 0});
  Tensor soft = softmax(randn({6, 4}, gen), 1);
  for (const Tensor& t : {classes, soft})
    EXPECT_NEAR(focal_loss(logits, t, {.alpha = 1.0f, .gamma = 0.0f}).item(),
                cross_entropy(logits, t).item(), 1e-5);
  // gamma > 0 down-weights confident rows: never above alpha * cross-entropy.
  Tensor rows = focal_loss(logits, classes, {.alpha = 1.0f, .reduction = Reduction::kNone});
  Tensor ce = cross_entropy(logits, classes, {.reduction = Reduction::kNone});
  for (int64_t b = 0; b < 6; ++b) EXPECT_LE(rows.at({b}), ce.at({b}) + 1e-6);
}

TEST(FocalLossGrad, FiniteDifferences) {
  Generator gen(6);
  Tensor logits = randn({4, 5}, gen, grad_opts());
  Tensor classes = from_vector(std::vector<int64_t>{4, 0, 2, 2});
  Tensor alpha = uniform({5}, 0.2f, 1.0f, gen);
  expect_gradcheck([&](auto& in) { return focal_loss(in[0], classes, {.class_alpha = alpha}); },
                   {logits});
  Tensor soft = softmax(randn({4, 5}, gen), 1);
  expect_gradcheck(
      [&](auto& in) {
        return focal_loss(in[0], soft, {.gamma = 0.5f, .reduction = Reduction::kNone});
      },
      {logits});
}

}  // namespace
}  // namespace bridle
