// conv2d: oneDNN against the naive loops on real network shapes (forward and
// every gradient), output shapes, errors, and finite-difference gradient checks.
#include <gtest/gtest.h>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;

using testing::grad_opts;

struct ConvCase {
  const char* name;
  Shape x, w;
  Conv2dOptions options;
  bool bias;
};

ConvGeometry geometry(const ConvCase& c, const Tensor& y) {
  ConvGeometry g{};
  g.N = c.x[0], g.C = c.x[1], g.H = c.x[2], g.W = c.x[3];
  g.O = c.w[0], g.KH = c.w[2], g.KW = c.w[3];
  g.OH = y.size(2), g.OW = y.size(3);
  g.SH = c.options.stride[0], g.SW = c.options.stride[1];
  g.PH = c.options.padding[0], g.PW = c.options.padding[1];
  g.DH = c.options.dilation[0], g.DW = c.options.dilation[1], g.G = c.options.groups;
  return g;
}

const ConvCase kCases[] = {
    {"lenet conv1", {8, 1, 28, 28}, {6, 1, 5, 5}, {{1, 1}, {2, 2}, {1, 1}, 1}, true},
    {"lenet conv2", {8, 6, 14, 14}, {16, 6, 5, 5}, {}, true},
    {"resnet 3x3", {4, 16, 32, 32}, {16, 16, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 1}, false},
    {"resnet stride 2", {4, 16, 32, 32}, {32, 16, 3, 3}, {{2, 2}, {1, 1}, {1, 1}, 1}, false},
    {"resnet 1x1 shortcut", {4, 32, 16, 16}, {64, 32, 1, 1}, {{2, 2}, {0, 0}, {1, 1}, 1}, true},
    {"dilated, uneven", {2, 3, 17, 13}, {5, 3, 3, 2}, {{2, 1}, {2, 1}, {2, 3}, 1}, true},
    {"grouped", {2, 8, 10, 10}, {12, 4, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 2}, true},
    {"depthwise", {2, 8, 9, 9}, {8, 1, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 8}, false},
};

TEST(Conv2d, OneDnnMatchesNaiveForwardAndBackward) {
  Generator gen(1);
  for (const ConvCase& c : kCases) {
    SCOPED_TRACE(c.name);
    Tensor x = randn(c.x, gen), w = randn(c.w, gen) * 0.2f, b = randn({c.w[0]}, gen);
    Tensor y = conv2d(x, w, c.bias ? b : Tensor(), c.options);
    ConvGeometry g = geometry(c, y);
    Tensor y_naive = Tensor::empty(y.shape());
    cpu::conv2d_forward_naive(y_naive.data<float>(), x.data<float>(), w.data<float>(),
                              c.bias ? b.data<float>() : nullptr, g);
    expect_close(y, y_naive, 1e-4f, 1e-4f);

    // Backward accumulates: start both from the same non-zero gradients.
    Tensor dy = randn(y.shape(), gen);
    Tensor dx0 = randn(c.x, gen), dw0 = randn(c.w, gen), db0 = randn({c.w[0]}, gen);
    Tensor dx = dx0.clone(), dw = dw0.clone(), db = db0.clone();
    Tensor dx_naive = dx0.clone(), dw_naive = dw0.clone(), db_naive = db0.clone();
    add_(dx, cpu::conv2d_backward_data_onednn(dy, w, g));
    cpu::conv2d_backward_weights_onednn(dw, c.bias ? db : Tensor(), x, dy, g);
    cpu::conv2d_backward_naive(dx_naive.data<float>(), dw_naive.data<float>(),
                               c.bias ? db_naive.data<float>() : nullptr, x.data<float>(),
                               w.data<float>(), dy.data<float>(), g);
    expect_close(dx, dx_naive, 1e-3f, 1e-4f);
    expect_close(dw, dw_naive, 1e-3f, 1e-4f);
    expect_close(db, db_naive, 1e-3f, 1e-4f);
  }
}

TEST(Conv2d, OutputShapesFollowTheFormula) {
  EXPECT_EQ(conv2d(zeros({2, 3, 32, 32}), zeros({8, 3, 3, 3}), Tensor(), {{1, 1}, {1, 1}}).shape(),
            (Shape{2, 8, 32, 32}));
  EXPECT_EQ(conv2d(zeros({2, 3, 32, 32}), zeros({8, 3, 3, 3}), Tensor(), {{2, 2}, {1, 1}}).shape(),
            (Shape{2, 8, 16, 16}));
  EXPECT_EQ(conv2d(zeros({1, 1, 28, 28}), zeros({6, 1, 5, 5})).shape(), (Shape{1, 6, 24, 24}));
  EXPECT_EQ(conv2d(zeros({1, 2, 10, 10}), zeros({4, 2, 3, 3}), Tensor(), {{1, 1}, {0, 0}, {2, 2}})
                .shape(),
            (Shape{1, 4, 6, 6}));
}

TEST(Conv2d, KnownValues) {
  // A 3x3 box filter over 1..16 (4x4) with padding 1: each output is its window's sum.
  Tensor x = arange(1.0, 17.0).reshape({1, 1, 4, 4});
  Tensor y = conv2d(x, ones({1, 1, 3, 3}), from_vector({0.5f}), {{1, 1}, {1, 1}});
  expect_close(y.slice(0, 1).reshape({16}),
               {14.5f, 24.5f, 30.5f, 22.5f, 33.5f, 54.5f, 63.5f, 45.5f, 57.5f, 90.5f, 99.5f, 69.5f,
                46.5f, 72.5f, 78.5f, 54.5f});
}

TEST(Conv2d, ErrorsNameShapes) {
  expect_error([] { conv2d(zeros({3, 32, 32}), zeros({8, 3, 3, 3})); }, {"conv2d", "[3, 32, 32]"});
  expect_error(
      [] {
        conv2d(zeros({1, 3, 8, 8}), zeros({8, 4, 3, 3}));
      },
      {"conv2d", "[8, 4, 3, 3]", "3 channels"});
  expect_error(
      [] {
        conv2d(zeros({1, 3, 8, 8}), zeros({8, 3, 3, 3}), zeros({7}));
      },
      {"bias", "[8]", "[7]"});
  expect_error(
      [] {
        conv2d(zeros({1, 3, 2, 2}), zeros({8, 3, 3, 3}));
      },
      {"larger than", "[1, 3, 2, 2]"});
  expect_error(
      [] {
        conv2d(zeros({1, 6, 8, 8}), zeros({8, 3, 3, 3}), Tensor(), {{1, 1}, {0, 0}, {1, 1}, 4});
      },
      {"groups"});
  expect_error(
      [] {
        conv2d(zeros({1, 3, 8, 8}), zeros({8, 3, 3, 3}), Tensor(), {{0, 1}});
      },
      {"stride"});
}

TEST(Conv2dGrad, FiniteDifferences) {
  Generator gen(2);
  expect_gradcheck(
      [](auto& in) {
        return conv2d(in[0], in[1], in[2], {{1, 1}, {1, 1}});
      },
      {randn({2, 3, 5, 5}, gen, grad_opts()), randn({4, 3, 3, 3}, gen, grad_opts()),
       randn({4}, gen, grad_opts())});
  expect_gradcheck(
      [](auto& in) {
        return conv2d(in[0], in[1], Tensor(), {{2, 1}, {1, 0}, {1, 2}, 2});
      },
      {randn({1, 4, 6, 7}, gen, grad_opts()), randn({2, 2, 2, 3}, gen, grad_opts())});
}

TEST(Conv2dLayer, InitShapesAndForward) {
  Generator gen(3);
  Conv2d conv(4, 8, 3, {{1, 1}, {1, 1}}, true, gen);
  EXPECT_EQ(conv.weight.shape(), (Shape{8, 4, 3, 3}));
  float bound = 1.0f / 6.0f;  // 1 / sqrt(4 * 3 * 3)
  for (float w : conv.weight.to_vector()) EXPECT_LE(std::abs(w), bound);
  EXPECT_EQ(conv.forward(zeros({2, 4, 10, 10})).shape(), (Shape{2, 8, 10, 10}));
  EXPECT_EQ(conv.named_parameters()[1].first, "bias");
  EXPECT_NE(conv.str().find("Conv2d(4, 8, kernel_size=3, stride=1, padding=1, bias=true)"),
            std::string::npos);
  expect_error([] { Conv2d(3, 8, 3, {{1, 1}, {0, 0}, {1, 1}, 2}); }, {"divide", "2 groups"});
}

}  // namespace
}  // namespace bridle
