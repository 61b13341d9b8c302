// Fused softmax cross-entropy: values against the composite -log_softmax[y],
// reductions, ignore_index, errors, naive vs fast kernels, gradient checks.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;
using testing::for_each_simd_path;

using testing::grad_opts;

Tensor one_hot(const std::vector<int64_t>& targets, int64_t C) {
  Tensor t = zeros({static_cast<int64_t>(targets.size()), C});
  for (size_t b = 0; b < targets.size(); ++b) t.set({static_cast<int64_t>(b), targets[b]}, 1.0);
  return t;
}

TEST(CrossEntropy, MatchesCompositeLogSoftmaxLoss) {
  Generator gen(1);
  const std::vector<int64_t> y = {3, 0, 9, 9, 4, 1};
  Tensor logits = randn({6, 10}, gen) * 3.0f;
  Tensor targets = from_vector(y);
  Tensor per_row = -sum(log_softmax(logits, 1) * one_hot(y, 10), 1);
  expect_close(cross_entropy(logits, targets, {Reduction::kNone}), per_row, 1e-5f, 1e-5f);
  expect_close(cross_entropy(logits, targets), mean(per_row), 1e-5f, 1e-5f);
  expect_close(cross_entropy(logits, targets, {Reduction::kSum}), sum(per_row), 1e-5f, 1e-5f);
  EXPECT_EQ(cross_entropy(logits, targets).dim(), 0);
  // int32 targets give the same answer.
  Tensor targets32 = from_vector(std::vector<int32_t>{3, 0, 9, 9, 4, 1});
  expect_close(cross_entropy(logits, targets32), cross_entropy(logits, targets), 0, 0);
}

TEST(CrossEntropy, ArticleExampleAndExtremeLogits) {
  // p = softmax([1.2, 0.3, -0.5, 2.8]) = [0.153, 0.062, 0.028, 0.757]; loss for class 3 = -ln
  // 0.757.
  Tensor logits = from_vector({1.2f, 0.3f, -0.5f, 2.8f}, {1, 4});
  expect_close(cross_entropy(logits, from_vector(std::vector<int64_t>{3})), {-std::log(0.7573f)},
               1e-3f, 0);
  Tensor big = from_vector({1000.0f, 1001.0f, 1002.0f}, {1, 3});
  float expected = std::log(std::exp(-2.0f) + std::exp(-1.0f) + 1.0f);
  expect_close(cross_entropy(big, from_vector(std::vector<int64_t>{2})), {expected}, 1e-5f, 1e-5f);
  Tensor neg_inf = from_vector({-std::numeric_limits<float>::infinity(), 0.0f}, {1, 2});
  expect_close(cross_entropy(neg_inf, from_vector(std::vector<int64_t>{1})), {0}, 0, 0);
}

TEST(CrossEntropy, IgnoreIndexSkipsRows) {
  Generator gen(2);
  Tensor logits = randn({4, 5}, gen, grad_opts());
  Tensor targets = from_vector(std::vector<int64_t>{1, -100, 3, -100});
  Tensor kept = cross_entropy(logits.detach().slice(0, 1), from_vector(std::vector<int64_t>{1}),
                              {Reduction::kSum}) +
                cross_entropy(logits.detach().slice(2, 3), from_vector(std::vector<int64_t>{3}),
                              {Reduction::kSum});
  Tensor loss = cross_entropy(logits, targets);
  expect_close(loss, {kept.item() / 2.0f}, 1e-6f, 1e-6f);  // mean over the 2 kept rows
  loss.backward();
  std::vector<float> g = logits.grad().to_vector();
  for (int j = 0; j < 5; ++j) {
    EXPECT_EQ(g[5 + j], 0.0f);
    EXPECT_EQ(g[15 + j], 0.0f);
  }
  // A custom ignore_index, and a batch with every row ignored: mean is 0, gradient 0.
  CrossEntropyOptions options;
  options.ignore_index = 7;
  Tensor all_ignored = from_vector(std::vector<int64_t>{7, 7, 7, 7});
  Tensor x = randn({4, 5}, gen, grad_opts());
  Tensor zero = cross_entropy(x, all_ignored, options);
  EXPECT_EQ(zero.item(), 0.0f);
  zero.backward();
  for (float v : x.grad().to_vector()) EXPECT_EQ(v, 0.0f);
}

TEST(CrossEntropy, BadTargetsAndShapesAreErrors) {
  Tensor logits = zeros({3, 10});
  expect_error(
      [&] {
        cross_entropy(logits, from_vector(std::vector<int64_t>{1, 12, 0}));
      },
      {"cross_entropy", "target 12", "row 1", "10 classes"});
  expect_error(
      [&] {
        cross_entropy(logits, from_vector(std::vector<int64_t>{1, -1, 0}));
      },
      {"target -1", "row 1"});
  expect_error(
      [&] {
        cross_entropy(logits, from_vector(std::vector<int64_t>{1, 2}));
      },
      {"[3]", "[2]"});
  expect_error([&] { cross_entropy(logits, zeros({3})); }, {"int32 or int64", "float32"});
  expect_error(
      [&] {
        cross_entropy(zeros({3}), from_vector(std::vector<int64_t>{1, 2, 0}));
      },
      {"[B, C]", "[3]"});
  Tensor nan_row = zeros({2, 3});
  nan_row.set({1, 2}, std::nan(""));
  expect_error(
      [&] {
        cross_entropy(nan_row, from_vector(std::vector<int64_t>{0, 0}));
      },
      {"row 1", "NaN"});
  // A +inf logit leaves no finite maximum to shift by (the CUDA kernels agree).
  Tensor inf_row = zeros({2, 4});
  inf_row.set({0, 0}, std::numeric_limits<float>::infinity());
  expect_error(
      [&] {
        cross_entropy(inf_row, from_vector(std::vector<int64_t>{1, 0}));
      },
      {"row 0", "NaN or +inf"});
}

TEST(CrossEntropy, FastKernelsMatchNaive) {
  for_each_simd_path([] {
    Generator gen(3);
    for (int64_t C : {2, 10, 37, 1000}) {
      const int64_t B = 19;
      Tensor logits = randn({B, C}, gen) * 8.0f;
      Tensor class_weight = uniform({C}, 0.1f, 2.0f, gen);
      std::vector<int64_t> y(B);
      for (int64_t b = 0; b < B; ++b) y[b] = (b * 7) % C;
      y[4] = -100;
      for (bool weighted : {false, true}) {
        SCOPED_TRACE(fmt::format("C={} weighted={}", C, weighted));
        const float* w = weighted ? class_weight.data<float>() : nullptr;
        Tensor fast[3] = {Tensor::empty({B}), Tensor::empty({B}), Tensor::empty({B})};
        Tensor naive[3] = {Tensor::empty({B}), Tensor::empty({B}), Tensor::empty({B})};
        cpu::cross_entropy_forward(fast[0].data<float>(), fast[1].data<float>(),
                                   fast[2].data<float>(), logits.data<float>(), y.data(), w, B, C,
                                   int64_t{-100});
        cpu::cross_entropy_forward_naive(naive[0].data<float>(), naive[1].data<float>(),
                                         naive[2].data<float>(), logits.data<float>(), y.data(), w,
                                         B, C, int64_t{-100});
        expect_close(fast[0], naive[0], 1e-4f, 1e-5f);  // nll
        expect_close(fast[1], naive[1], 1e-2f, 1e-5f);  // smooth: a sum of C terms
        expect_close(fast[2], naive[2], 1e-5f, 1e-6f);  // lse

        Tensor targets = softmax(randn({B, C}, gen), 1);
        cpu::cross_entropy_soft_forward(fast[0].data<float>(), fast[1].data<float>(),
                                        fast[2].data<float>(), logits.data<float>(),
                                        targets.data<float>(), w, 0.1f, B, C);
        cpu::cross_entropy_soft_forward_naive(naive[0].data<float>(), naive[1].data<float>(),
                                              naive[2].data<float>(), logits.data<float>(),
                                              targets.data<float>(), w, 0.1f, B, C);
        expect_close(fast[0], naive[0], 1e-4f, 1e-4f);  // loss
        expect_close(fast[1], naive[1], 1e-5f, 1e-6f);  // lse
        expect_close(fast[2], naive[2], 1e-5f, 1e-5f);  // target mass
      }
    }
  });
}

TEST(CrossEntropy, OptionsMatchTheirDefinitions) {
  Generator gen(6);
  Tensor logits = randn({6, 5}, gen) * 2.0f;
  Tensor w = uniform({5}, 0.2f, 2.0f, gen);
  std::vector<int64_t> y = {0, 4, -100, 2, 2, 1};
  Tensor targets = from_vector(y);
  Tensor logp = log_softmax(logits, 1);
  // Weighted mean: sum_b w_y nll_b / sum_b w_y over rows not ignored.
  double num = 0.0, den = 0.0, smooth = 0.0;
  for (int64_t b = 0; b < 6; ++b) {
    if (y[b] < 0) continue;
    num -= w.at({y[b]}) * logp.at({b, y[b]});
    den += w.at({y[b]});
    for (int64_t c = 0; c < 5; ++c) smooth -= w.at({c}) * logp.at({b, c});
  }
  EXPECT_NEAR(cross_entropy(logits, targets, {.weight = w}).item(), num / den, 1e-5);
  // Label smoothing: (1 - eps) nll + eps / C smooth, both over the same weight sum.
  const float eps = 0.2f;
  EXPECT_NEAR(cross_entropy(logits, targets, {.weight = w, .label_smoothing = eps}).item(),
              ((1 - eps) * num + eps / 5 * smooth) / den, 1e-5);
  // cross_entropy = nll_loss(log_softmax) with the same options.
  EXPECT_NEAR(nll_loss(logp, targets, {.weight = w}).item(), num / den, 1e-5);
  // One-hot probability targets are class targets (mean over all B rows).
  Tensor one_hot_targets = one_hot({0, 4, 3, 2, 2, 1}, 5);
  Tensor as_classes = from_vector(std::vector<int64_t>{0, 4, 3, 2, 2, 1});
  EXPECT_NEAR(cross_entropy(logits, one_hot_targets).item(),
              cross_entropy(logits, as_classes).item(), 1e-5);
  // Smoothing 0 changes nothing; an all-ignored weighted mean is 0.
  EXPECT_EQ(cross_entropy(logits, targets, {.label_smoothing = 0.0f}).item(),
            cross_entropy(logits, targets).item());
  Tensor all_ignored = from_vector(std::vector<int64_t>(6, -100));
  EXPECT_EQ(cross_entropy(logits, all_ignored, {.weight = w, .label_smoothing = 0.1f}).item(),
            0.0f);
}

TEST(CrossEntropy, BadOptionsAreErrors) {
  Tensor logits = zeros({2, 3});
  Tensor y = from_vector(std::vector<int64_t>{0, 2});
  expect_error([&] { cross_entropy(logits, y, {.label_smoothing = 1.5f}); },
               {"label_smoothing", "[0, 1]", "1.5"});
  expect_error([&] { cross_entropy(logits, y, {.weight = ones({4})}); }, {"weight", "[3]", "[4]"});
  expect_error([&] { cross_entropy(logits, y, {.weight = ones({3}).set_requires_grad()}); },
               {"weight", "constants"});
  expect_error(
      [&] {
        cross_entropy(logits, zeros({2, 4}));
      },
      {"probabilities", "[2, 3]", "[2, 4]"});
  expect_error(
      [&] {
        cross_entropy(logits, zeros({2, 3}), {.ignore_index = 1});
      },
      {"ignore_index", "probability"});
  expect_error([&] { nll_loss(logits, zeros({2})); }, {"nll_loss", "int", "float32"});
  expect_error(
      [&] {
        nll_loss(logits, from_vector(std::vector<int64_t>{0, 3}));
      },
      {"nll_loss", "target 3", "row 1"});
}

TEST(CrossEntropyGrad, EveryReductionMatchesFiniteDifferences) {
  Generator gen(4);
  Tensor logits = randn({5, 7}, gen, grad_opts());
  Tensor targets = from_vector(std::vector<int64_t>{0, 6, 3, -100, 3});
  for (Reduction r : {Reduction::kNone, Reduction::kMean, Reduction::kSum})
    expect_gradcheck([&](auto& in) { return cross_entropy(in[0], targets, {r}); }, {logits});
}

TEST(CrossEntropyGrad, OptionsMatchFiniteDifferences) {
  Generator gen(7);
  Tensor logits = randn({5, 7}, gen, grad_opts());
  Tensor targets = from_vector(std::vector<int64_t>{0, 6, 3, -100, 3});
  Tensor w = uniform({7}, 0.2f, 2.0f, gen);
  Tensor soft = softmax(randn({5, 7}, gen), 1);
  for (Reduction r : {Reduction::kNone, Reduction::kMean, Reduction::kSum}) {
    SCOPED_TRACE(static_cast<int>(r));
    expect_gradcheck(
        [&](auto& in) {
          return cross_entropy(in[0], targets,
                               {.reduction = r, .weight = w, .label_smoothing = 0.3f});
        },
        {logits});
    expect_gradcheck(
        [&](auto& in) { return cross_entropy(in[0], targets, {.reduction = r, .weight = w}); },
        {logits});
    expect_gradcheck(
        [&](auto& in) {
          return cross_entropy(in[0], soft, {.reduction = r, .weight = w, .label_smoothing = 0.1f});
        },
        {logits});
    expect_gradcheck(
        [&](auto& in) {
          return nll_loss(log_softmax(in[0], 1), targets, {.reduction = r, .weight = w});
        },
        {logits});
  }
}

// The first backward into the logits writes a fresh gradient (ignored rows get
// exact zeros); later ones add to it.
TEST(CrossEntropyGrad, GradientsAccumulateAcrossUses) {
  Generator gen(5);
  Tensor logits = randn({6, 40}, gen, grad_opts());
  Tensor targets = from_vector(std::vector<int64_t>{3, -100, 39, 0, 7, -100});
  Tensor soft = softmax(randn({6, 40}, gen), 1);
  CrossEntropyOptions smoothed{.label_smoothing = 0.2f};
  cross_entropy(logits, targets).backward();
  Tensor first = logits.grad().clone();
  for (int64_t j = 0; j < 40; ++j) {
    EXPECT_EQ(first.at({1, j}), 0.0f);
    EXPECT_EQ(first.at({5, j}), 0.0f);
  }
  cross_entropy(logits, targets, smoothed).backward();
  cross_entropy(logits, soft).backward();
  Tensor total = logits.grad().clone();
  logits.set_grad(Tensor());
  cross_entropy(logits, targets, smoothed).backward();
  Tensor second = logits.grad().clone();
  logits.set_grad(Tensor());
  cross_entropy(logits, soft).backward();
  expect_close(total, first + second + logits.grad(), 1e-6f, 1e-5f);
}

TEST(CrossEntropyGrad, FusedBackwardEqualsSoftmaxMinusOneHot) {
  Generator gen(5);
  const std::vector<int64_t> y = {2, 0, 1};
  Tensor logits = randn({3, 4}, gen, grad_opts());
  cross_entropy(logits, from_vector(y)).backward();
  Tensor expected = (softmax(logits.detach(), 1) - one_hot(y, 4)) / 3.0f;
  expect_close(logits.grad(), expected, 1e-6f, 1e-5f);
}

}  // namespace
}  // namespace bridle
