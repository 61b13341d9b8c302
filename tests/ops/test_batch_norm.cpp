// batch_norm: training and evaluation values worked by hand, the running-stat
// update (unbiased variance), errors, naive loops vs oneDNN, gradient checks and
// parity with PyTorch (fixtures/torch_layers.json).
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

TEST(BatchNorm, TrainingUsesBatchStatsAndUpdatesRunningStats) {
  // One channel holding 1, 2, 3, 4: mean 2.5, biased var 1.25, unbiased 5/3.
  Tensor x = from_vector({1, 2, 3, 4}, {4, 1});
  Tensor rm = zeros({1}), rv = ones({1});
  Tensor y = batch_norm(x, rm, rv, Tensor(), Tensor(), /*training=*/true);
  float s = 1.0f / std::sqrt(1.25f + 1e-5f);
  expect_close(y, {-1.5f * s, -0.5f * s, 0.5f * s, 1.5f * s}, 1e-6f, 1e-6f);
  expect_close(rm, {0.1f * 2.5f}, 1e-7f, 1e-6f);
  expect_close(rv, {0.9f + 0.1f * 5.0f / 3.0f}, 1e-7f, 1e-6f);
  // momentum 1 replaces the running stats outright.
  batch_norm(x, rm, rv, Tensor(), Tensor(), true, /*momentum=*/1.0f);
  expect_close(rm, {2.5f}, 1e-6f, 0);
  expect_close(rv, {5.0f / 3.0f}, 1e-6f, 1e-6f);
}

TEST(BatchNorm, EvalUsesRunningStatsAndLeavesThemAlone) {
  Tensor x = from_vector({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor rm = from_vector({0.5f, -1.0f}), rv = from_vector({4.0f, 0.25f});
  Tensor w = from_vector({2.0f, -1.0f}), b = from_vector({0.0f, 3.0f});
  Tensor y = batch_norm(x, rm, rv, w, b, /*training=*/false, 0.1f, /*eps=*/0.0f);
  // channel 0: (x - 0.5) / 2 * 2 = x - 0.5; channel 1: (x + 1) / 0.5 * -1 + 3.
  expect_close(y, {0.5f, -3.0f, 2.5f, -7.0f, 4.5f, -11.0f}, 1e-6f, 1e-6f);
  expect_close(rm, {0.5f, -1.0f}, 0, 0);
  expect_close(rv, {4.0f, 0.25f}, 0, 0);
}

TEST(BatchNorm, EachChannelOfA4dBatchIsNormalized) {
  Generator gen(1);
  Tensor x = randn({8, 3, 5, 5}, gen) * 4.0f + 10.0f;
  Tensor y = batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true);
  Tensor per_channel = transpose(y, 0, 1).reshape({3, 8 * 25});
  for (float m : mean(per_channel, 1).to_vector()) EXPECT_NEAR(m, 0.0f, 1e-5f);
  for (float v : mean(per_channel * per_channel, 1).to_vector()) EXPECT_NEAR(v, 1.0f, 1e-3f);
}

TEST(BatchNorm, Errors) {
  Tensor rm = zeros({3}), rv = ones({3});
  expect_error(
      [&] {
        batch_norm(zeros({1, 3}), rm, rv, Tensor(), Tensor(), true);
      },
      {"batch_norm", "more than 1 value per channel when training", "[1, 3]"});
  expect_error(
      [&] {
        batch_norm(zeros({1, 3, 1, 1}), rm, rv, Tensor(), Tensor(), true);
      },
      {"more than 1 value per channel", "[1, 3, 1, 1]"});
  // One value per channel is fine in evaluation.
  EXPECT_EQ(batch_norm(zeros({1, 3}), rm, rv, Tensor(), Tensor(), false).shape(), (Shape{1, 3}));
  expect_error(
      [&] {
        batch_norm(zeros({4, 3}), Tensor(), Tensor(), Tensor(), Tensor(), false);
      },
      {"batch_norm", "evaluation", "running_mean"});
  expect_error(
      [&] {
        batch_norm(zeros({4, 3}), rm, Tensor(), Tensor(), Tensor(), true);
      },
      {"batch_norm", "running_var"});
  expect_error(
      [&] {
        batch_norm(zeros({4, 3}), rm, rv, ones({4}), Tensor(), true);
      },
      {"batch_norm", "weight", "[3]", "[4, 3]", "[4]"});
  expect_error(
      [&] {
        batch_norm(zeros({4, 3}), zeros({2}), rv, Tensor(), Tensor(), true);
      },
      {"running_mean", "[2]"});
  expect_error([&] { batch_norm(zeros({4}), Tensor(), Tensor(), Tensor(), Tensor(), true); },
               {"batch_norm", "[N, C]", "[4]"});
  expect_error(
      [&] {
        batch_norm(zeros({4, 3}), rm, rv, Tensor(), Tensor(), true, 0.1f, -1.0f);
      },
      {"batch_norm", "eps", "-1"});
}

// --- naive vs oneDNN ------------------------------------------------------------

TEST(BatchNorm, OneDnnMatchesNaive) {
  Generator gen(2);
  struct Config {
    int64_t N, C, HW;
  };
  for (Config c : {Config{16, 32, 256}, Config{64, 100, 1}, Config{3, 5, 7}}) {
    for (bool training : {true, false}) {
      for (bool affine : {true, false}) {
        SCOPED_TRACE(
            fmt::format("N={} C={} HW={} training={} affine={}", c.N, c.C, c.HW, training, affine));
        Tensor x = randn({c.N, c.C, c.HW}, gen) * 3.0f + 1.0f;
        Tensor w = uniform({c.C}, 0.5f, 1.5f, gen), b = randn({c.C}, gen);
        const float* wp = affine ? w.data<float>() : nullptr;
        const float* bp = affine ? b.data<float>() : nullptr;
        Tensor mean_naive = uniform({c.C}, -1.0f, 1.0f, gen), var_naive = rand({c.C}, gen) + 0.5f;
        Tensor mean_fast = mean_naive.clone(), var_fast = var_naive.clone();
        if (training)
          cpu::batch_norm_stats_naive(mean_naive.data<float>(), var_naive.data<float>(),
                                      x.data<float>(), c.N, c.C, c.HW);
        Tensor y_naive = Tensor::empty(x.shape());
        cpu::batch_norm_forward_naive(y_naive.data<float>(), x.data<float>(),
                                      mean_naive.data<float>(), var_naive.data<float>(), wp, bp,
                                      c.N, c.C, c.HW, 1e-5f);
        Tensor y_fast = cpu::batch_norm_forward_onednn(
            x, mean_fast, var_fast, affine ? w : Tensor(), affine ? b : Tensor(), 1e-5f, training);
        expect_close(mean_fast, mean_naive, 1e-5f, 1e-5f);
        expect_close(var_fast, var_naive, 1e-5f, 1e-4f);
        expect_close(y_fast, y_naive, 1e-4f, 1e-4f);

        // Backward accumulates: start both from the same nonzero gradients.
        Tensor dy = randn(x.shape(), gen), dx0 = randn(x.shape(), gen), dw0 = randn({c.C}, gen);
        Tensor dx_naive = dx0.clone(), dx_fast = dx0.clone();
        Tensor dw_naive = dw0.clone(), dw_fast = dw0.clone(), db_naive = dw0.clone(),
               db_fast = dw0.clone();
        float* dwn = affine ? dw_naive.data<float>() : nullptr;
        float* dbn = affine ? db_naive.data<float>() : nullptr;
        cpu::batch_norm_backward_naive(
            dx_naive.data<float>(), dwn, dbn, dy.data<float>(), x.data<float>(),
            mean_naive.data<float>(), var_naive.data<float>(), wp, c.N, c.C, c.HW, 1e-5f, training);
        add_(dx_fast, cpu::batch_norm_backward_onednn(affine ? dw_fast : Tensor(),
                                                      affine ? db_fast : Tensor(), dy, x, mean_fast,
                                                      var_fast, affine ? w : Tensor(),
                                                      affine ? b : Tensor(), 1e-5f, training));
        expect_close(dx_fast, dx_naive, 1e-4f, 1e-4f);
        expect_close(dw_fast, dw_naive, 1e-3f, 1e-4f);
        expect_close(db_fast, db_naive, 1e-3f, 1e-4f);
      }
    }
  }
}

// --- gradients ------------------------------------------------------------------

TEST(BatchNormGrad, TrainingAndEvalAgainstFiniteDifferences) {
  Generator gen(3);
  Tensor x = randn({4, 3, 2, 2}, gen, grad_opts());
  Tensor w = uniform({3}, 0.5f, 1.5f, gen).set_requires_grad();
  Tensor b = randn({3}, gen, grad_opts());
  Tensor rm = randn({3}, gen), rv = rand({3}, gen) + 0.5f;
  for (bool training : {true, false}) {
    SCOPED_TRACE(training ? "training" : "eval");
    expect_gradcheck(
        [&](auto& in) { return batch_norm(in[0], rm.clone(), rv.clone(), in[1], in[2], training); },
        {x, w, b});
    expect_gradcheck(
        [&](auto& in) {
          return batch_norm(in[0], rm.clone(), rv.clone(), Tensor(), Tensor(), training);
        },
        {x});
  }
  Tensor x2 = randn({5, 4}, gen, grad_opts());
  Tensor w2 = uniform({4}, 0.5f, 1.5f, gen).set_requires_grad();
  expect_gradcheck(
      [](auto& in) { return batch_norm(in[0], Tensor(), Tensor(), in[1], Tensor(), true); },
      {x2, w2});
}

TEST(BatchNormGrad, OnlyTheParametersCanRequireGrad) {
  // x is data (no grad); the gradient still reaches weight and bias.
  Generator gen(4);
  Tensor x = randn({6, 2}, gen);
  Tensor w = ones({2}, grad_opts()), b = zeros({2}, grad_opts());
  Tensor y = batch_norm(x, Tensor(), Tensor(), w, b, true);
  sum(y * y).backward();
  expect_close(b.grad(), {0, 0}, 1e-5f, 0);              // sum of 2 y = 0 (y has zero mean)
  expect_close(w.grad(), {12.0f, 12.0f}, 1e-3f, 1e-4f);  // sum 2 y^2 = 2 M (unit variance)
  EXPECT_FALSE(x.grad().defined());
}

// --- parity with PyTorch --------------------------------------------------------

TEST(BatchNormParity, MatchesTorch) {
  int checked = 0;
  for (const auto& c : testing::layer_fixture().at("batch_norm")) {
    Tensor x = testing::fixture_tensor(c, "input", true);
    Tensor w = testing::fixture_tensor(c, "weight", true);
    Tensor b = testing::fixture_tensor(c, "bias", true);
    Tensor rm = testing::fixture_tensor(c, "running_mean");
    Tensor rv = testing::fixture_tensor(c, "running_var");
    Tensor y = batch_norm(x, rm, rv, w, b, c.at("training").get<bool>(),
                          c.at("momentum").get<float>(), c.at("eps").get<float>());
    testing::expect_matches(y, c, "output", 1e-5, 5e-5);
    testing::expect_matches(rm, c, "running_mean_after", 1e-5, 5e-5);
    testing::expect_matches(rv, c, "running_var_after", 1e-5, 5e-5);
    y.backward(testing::fixture_tensor(c, "weights"));
    testing::expect_matches(x.grad(), c, "grad_input", 1e-5, 5e-5);
    if (w.defined()) testing::expect_matches(w.grad(), c, "grad_weight", 1e-5, 5e-5);
    if (b.defined()) testing::expect_matches(b.grad(), c, "grad_bias", 1e-5, 5e-5);
    ++checked;
  }
  EXPECT_GE(checked, 12);
}

}  // namespace
}  // namespace bridle
