// max_pool2d / avg_pool2d / adaptive_avg_pool2d: values worked by hand, ties,
// errors, naive loops vs oneDNN on real shapes, gradient checks, and parity with
// PyTorch (fixtures/torch_layers.json).
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

// A random permutation of well-separated values (0.1 apart): no ties, and a
// finite-difference step of 1e-2 never changes which element is the maximum.
Tensor distinct(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  int64_t n = shape_numel(shape);
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = 0.1f * static_cast<float>(i) - 0.05f * n;
  for (int64_t i = n - 1; i > 0; --i) std::swap(v[i], v[gen.next_u64() % (i + 1)]);
  return from_vector(v, shape, grad_opts());
}

// The geometry the op would derive (mirrors pool.h's formula).
PoolGeometry geometry(const Shape& x, Size2 k, Size2 s, Size2 p, Size2 d = {1, 1}) {
  PoolGeometry g{x[0], x[1], x[2], x[3], 0, 0, k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1]};
  g.OH = (g.H + 2 * g.PH - g.DH * (g.KH - 1) - 1) / g.SH + 1;
  g.OW = (g.W + 2 * g.PW - g.DW * (g.KW - 1) - 1) / g.SW + 1;
  return g;
}

const Tensor kGrid = from_vector({1, 2, 3, 4,     //
                                  5, 6, 7, 8,     //
                                  9, 10, 11, 12,  //
                                  13, 14, 15, 16},
                                 {1, 1, 4, 4});

TEST(MaxPool2d, ValuesByHand) {
  expect_close(max_pool2d(kGrid, 2), {6, 8, 14, 16}, 0, 0);
  expect_close(max_pool2d(kGrid, 3, 1), {11, 12, 15, 16}, 0, 0);
  // Padding never wins: the corner window {pad, pad, pad, 1} gives 1.
  Tensor y = max_pool2d(kGrid * -1.0f, 2, 2, 1);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 3, 3}));
  expect_close(y, {-1, -2, -4, -5, -6, -8, -13, -14, -16}, 0, 0);
  // Dilation 2: taps two apart, so a 2x2 kernel spans 3x3.
  expect_close(max_pool2d(kGrid, {2, 2}, {1, 1}, {0, 0}, {2, 2}), {11, 12, 15, 16}, 0, 0);
  // Rectangular kernel and stride; floor mode drops the last column.
  Tensor r = max_pool2d(kGrid, {1, 3}, {2, 2});
  EXPECT_EQ(r.shape(), (Shape{1, 1, 2, 1}));
  expect_close(r, {3, 11}, 0, 0);
}

TEST(MaxPool2d, TiesSendTheGradientToTheFirstMaximum) {
  // PyTorch's CPU kernel keeps the first maximum in row-major window order.
  Tensor x = from_vector({1, 3, 3, 2,  //
                          0, 3, 1, 1,  //
                          5, 5, 5, 5,  //
                          5, 5, 5, 5},
                         {1, 1, 4, 4}, grad_opts());
  sum(max_pool2d(x, 2)).backward();
  expect_close(x.grad(), {0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0}, 0, 0);
  // The naive kernel makes the same choice and reports PyTorch's indices.
  PoolGeometry g = geometry(x.shape(), {2, 2}, {2, 2}, {0, 0});
  Tensor y = Tensor::empty({1, 1, 2, 2}), index = Tensor::empty({1, 1, 2, 2}, kInt64);
  cpu::max_pool2d_forward_naive(y.data<float>(), index.data<int64_t>(), x.data<float>(), g);
  EXPECT_EQ(index.to_int_vector(), (std::vector<int64_t>{1, 2, 8, 10}));
}

TEST(MaxPool2d, NaiveKernelPropagatesNaN) {
  Tensor x = from_vector({1, std::nanf(""), 3, 4}, {1, 1, 2, 2});
  PoolGeometry g = geometry(x.shape(), {2, 2}, {2, 2}, {0, 0});
  Tensor y = Tensor::empty({1, 1, 1, 1}), index = Tensor::empty({1, 1, 1, 1}, kInt64);
  cpu::max_pool2d_forward_naive(y.data<float>(), index.data<int64_t>(), x.data<float>(), g);
  EXPECT_TRUE(std::isnan(y.item()));
  EXPECT_EQ(index.to_int_vector()[0], 1);
}

TEST(AvgPool2d, ValuesByHand) {
  expect_close(avg_pool2d(kGrid, 2), {3.5f, 5.5f, 11.5f, 13.5f}, 1e-6f, 0);
  // Corner window with padding 1: {pad, pad, pad, 1} -> 1 / 4 when padding counts,
  // 1 / 1 when it does not.
  Tensor incl = avg_pool2d(kGrid, 2, 2, 1);
  Tensor excl = avg_pool2d(kGrid, 2, 2, 1, /*count_include_pad=*/false);
  EXPECT_EQ(incl.shape(), (Shape{1, 1, 3, 3}));
  expect_close(incl, {0.25f, 1.25f, 1.0f, 3.5f, 8.5f, 5.0f, 3.25f, 7.25f, 4.0f}, 1e-6f, 0);
  expect_close(excl, {1, 2.5f, 4, 7, 8.5f, 10, 13, 14.5f, 16}, 1e-6f, 0);
  // Rectangular: 1x4 rows.
  expect_close(avg_pool2d(kGrid, {1, 4}), {2.5f, 6.5f, 10.5f, 14.5f}, 1e-6f, 0);
}

TEST(AdaptiveAvgPool2d, GlobalAndGeneralSizes) {
  Generator gen(1);
  Tensor x = randn({2, 3, 7, 5}, gen);
  Tensor global = adaptive_avg_pool2d(x, 1);
  EXPECT_EQ(global.shape(), (Shape{2, 3, 1, 1}));
  expect_close(global.reshape({6}), mean(x.reshape({6, 35}), 1), 1e-6f, 1e-5f);
  // Output = input size is the identity; divisible sizes are plain average pooling.
  expect_close(adaptive_avg_pool2d(x, {7, 5}), x, 0, 0);
  Tensor y = randn({2, 3, 8, 6}, gen);
  expect_close(adaptive_avg_pool2d(y, {4, 3}), avg_pool2d(y, 2), 1e-6f, 1e-5f);
  // 5 rows into 3: windows [0, 2), [1, 4), [3, 5) (they overlap).
  Tensor col = from_vector({1, 2, 3, 4, 5}, {1, 1, 5, 1});
  expect_close(adaptive_avg_pool2d(col, {3, 1}), {1.5f, 3.0f, 4.5f}, 1e-6f, 0);
  // Larger than the input: windows repeat elements.
  expect_close(adaptive_avg_pool2d(from_vector({1, 2}, {1, 1, 1, 2}), {1, 3}), {1, 1.5f, 2}, 1e-6f,
               0);
}

TEST(Pool, ErrorsNameOpShapesAndValues) {
  Tensor x = zeros({2, 3, 8, 8});
  expect_error([] { max_pool2d(zeros({3, 8, 8}), 2); }, {"max_pool2d", "4-D", "[3, 8, 8]"});
  expect_error([&] { max_pool2d(x, 0); }, {"max_pool2d", "kernel", "{0, 0}"});
  expect_error([&] { max_pool2d(x, {2, 2}, {-1, 1}); }, {"max_pool2d", "stride", "{-1, 1}"});
  expect_error([&] { max_pool2d(x, 2, 2, 0, 0); }, {"max_pool2d", "dilation"});
  expect_error([&] { max_pool2d(x, 3, 1, 2); }, {"max_pool2d", "padding {2, 2}", "half"});
  expect_error([&] { avg_pool2d(x, 2, 2, -1); }, {"avg_pool2d", "padding {-1, -1}"});
  expect_error(
      [] {
        avg_pool2d(zeros({1, 1, 2, 2}), 3);
      },
      {"avg_pool2d", "[1, 1, 2, 2]", "smaller"});
  expect_error(
      [] {
        max_pool2d(zeros({1, 1, 4, 4}), 3, 1, 0, 2);
      },
      {"max_pool2d", "dilation {2, 2}"});
  expect_error([] { max_pool2d(zeros({1, 1, 4, 4}, kInt64), 2); }, {"max_pool2d", "int64"});
  expect_error([&] { adaptive_avg_pool2d(x, {0, 2}); }, {"adaptive_avg_pool2d", "{0, 2}"});
  expect_error(
      [] {
        adaptive_avg_pool2d(zeros({1, 1, 0, 4}), 1);
      },
      {"adaptive_avg_pool2d", "[1, 1, 0, 4]"});
}

TEST(Pool, EmptyBatchGivesEmptyOutput) {
  EXPECT_EQ(max_pool2d(zeros({0, 3, 8, 8}), 2).shape(), (Shape{0, 3, 4, 4}));
  EXPECT_EQ(avg_pool2d(zeros({0, 3, 8, 8}), 2).shape(), (Shape{0, 3, 4, 4}));
}

// --- naive vs oneDNN ------------------------------------------------------------

struct PoolConfig {
  Shape x;
  Size2 k, s, p, d;
};

const PoolConfig kRealConfigs[] = {
    {{8, 16, 32, 32}, {2, 2}, {2, 2}, {0, 0}, {1, 1}},
    {{8, 16, 32, 32}, {3, 3}, {2, 2}, {1, 1}, {1, 1}},
    {{4, 8, 15, 17}, {3, 2}, {1, 2}, {1, 1}, {1, 1}},  // odd sizes, rectangular
    {{2, 8, 13, 13}, {3, 3}, {2, 2}, {1, 1}, {2, 2}},  // dilation (max only)
};

TEST(MaxPool2d, OneDnnMatchesNaive) {
  Generator gen(7);
  for (const PoolConfig& c : kRealConfigs) {
    for (bool relu_input : {false, true}) {  // after ReLU half the inputs tie at 0
      SCOPED_TRACE(shape_str(c.x) + (relu_input ? " relu" : ""));
      Tensor x = randn(c.x, gen);
      if (relu_input) x = relu(x);
      PoolGeometry g = geometry(c.x, c.k, c.s, c.p, c.d);
      Shape out{g.N, g.C, g.OH, g.OW};
      Tensor y_naive = Tensor::empty(out), workspace;
      Tensor index = Tensor::empty(out, kInt64);
      cpu::max_pool2d_forward_naive(y_naive.data<float>(), index.data<int64_t>(), x.data<float>(),
                                    g);
      Tensor y_fast = cpu::max_pool2d_forward_onednn(x, workspace, g);
      expect_close(y_fast, y_naive, 0, 0);
      // Backward accumulates: start both from the same nonzero gradient.
      Tensor dy = randn(out, gen), start = randn(c.x, gen);
      Tensor dx_naive = start.clone(), dx_fast = start.clone();
      cpu::max_pool2d_backward_naive(dx_naive.data<float>(), index.data<int64_t>(),
                                     dy.data<float>(), g);
      add_(dx_fast, cpu::max_pool2d_backward_onednn(workspace, dy, g, nullptr));
      expect_close(dx_fast, dx_naive, 1e-6f, 1e-6f);
    }
  }
}

TEST(AvgPool2d, OneDnnMatchesNaive) {
  Generator gen(8);
  for (const PoolConfig& c : kRealConfigs) {
    if (c.d[0] != 1) continue;
    for (bool include : {true, false}) {
      SCOPED_TRACE(shape_str(c.x) + (include ? " include_pad" : " exclude_pad"));
      Tensor x = randn(c.x, gen);
      PoolGeometry g = geometry(c.x, c.k, c.s, c.p);
      Shape out{g.N, g.C, g.OH, g.OW};
      Tensor y_naive = Tensor::empty(out);
      cpu::avg_pool2d_forward_naive(y_naive.data<float>(), x.data<float>(), g, include);
      Tensor y_fast = cpu::avg_pool2d_forward_onednn(x, g, include);
      expect_close(y_fast, y_naive, 1e-6f, 1e-5f);
      Tensor dy = randn(out, gen), start = randn(c.x, gen);
      Tensor dx_naive = start.clone(), dx_fast = start.clone();
      cpu::avg_pool2d_backward_naive(dx_naive.data<float>(), dy.data<float>(), g, include);
      add_(dx_fast, cpu::avg_pool2d_backward_onednn(dy, g, include, nullptr));
      expect_close(dx_fast, dx_naive, 1e-6f, 1e-5f);
    }
  }
}

// --- gradients ------------------------------------------------------------------

TEST(PoolGrad, MaxPoolAgainstFiniteDifferences) {
  Tensor x = distinct({1, 2, 7, 6}, 3);
  expect_gradcheck([](auto& in) { return max_pool2d(in[0], 2); }, {x});
  expect_gradcheck([](auto& in) { return max_pool2d(in[0], 3, 2, 1); }, {x});
  expect_gradcheck([](auto& in) { return max_pool2d(in[0], 3, 1, 1); }, {x});  // overlapping
  expect_gradcheck([](auto& in) { return max_pool2d(in[0], {3, 2}, {1, 2}, {1, 0}, {2, 1}); }, {x});
}

TEST(PoolGrad, AvgAndAdaptiveAgainstFiniteDifferences) {
  Generator gen(4);
  Tensor x = randn({1, 2, 7, 6}, gen, grad_opts());
  for (bool include : {true, false}) {
    expect_gradcheck([include](auto& in) { return avg_pool2d(in[0], 3, 2, 1, include); }, {x});
    expect_gradcheck(
        [include](auto& in) {
          return avg_pool2d(in[0], {2, 3}, {1, 2}, {1, 1}, include);
        },
        {x});
  }
  for (Size2 size : {Size2{1, 1}, Size2{3, 4}, Size2{4, 2}, Size2{9, 8}})
    expect_gradcheck([size](auto& in) { return adaptive_avg_pool2d(in[0], size); }, {x});
}

TEST(PoolGrad, BackwardAccumulatesIntoAnExistingGradient) {
  Tensor x = distinct({1, 1, 4, 4}, 5);
  // x feeds two pools and a sum: each backward adds its share.
  sum(max_pool2d(x, 2) + avg_pool2d(x, 2)).backward();
  std::vector<float> g = x.grad().to_vector();
  float total = 0.0f;
  for (float v : g) total += v;
  EXPECT_NEAR(total, 4.0f + 4.0f, 1e-6f);  // 4 maxima, and 4 windows of 4 quarters
  for (float v : g) EXPECT_TRUE(v == 0.25f || v == 1.25f) << v;
}

// --- parity with PyTorch --------------------------------------------------------

TEST(PoolParity, MatchesTorch) {
  int checked = 0;
  for (const auto& c : testing::layer_fixture().at("pool")) {
    const std::string op = c.at("op");
    Tensor x = testing::fixture_tensor(c, "input", true);
    Tensor y;
    if (op == "max_pool2d")
      y = max_pool2d(x, c.at("kernel").get<Size2>(), c.at("stride").get<Size2>(),
                     c.at("padding").get<Size2>(), c.at("dilation").get<Size2>());
    else if (op == "avg_pool2d")
      y = avg_pool2d(x, c.at("kernel").get<Size2>(), c.at("stride").get<Size2>(),
                     c.at("padding").get<Size2>(), c.at("count_include_pad").get<bool>());
    else
      y = adaptive_avg_pool2d(x, c.at("output_size").get<Size2>());
    testing::expect_matches(y, c, "output", 1e-6, 1e-5);
    y.backward(testing::fixture_tensor(c, "weights"));
    testing::expect_matches(x.grad(), c, "grad_input", 1e-6, 1e-5);
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

}  // namespace
}  // namespace bridle
