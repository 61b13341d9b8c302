// Elementwise ops: values, broadcasting, errors, and a finite-difference gradient
// check for every op (PyTorch parity is in test_torch_parity.cpp).
#include <gtest/gtest.h>

#include <cmath>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;

using testing::grad_opts;

Tensor param(const Shape& shape, float low, float high, uint64_t seed) {
  Generator gen(seed);
  return uniform(shape, low, high, gen, grad_opts());
}

TEST(Elementwise, ValuesMatchTheirDefinitions) {
  Tensor x = from_vector({-2.0f, -0.5f, 0.5f, 3.0f});
  expect_close(neg(x), {2, 0.5f, -0.5f, -3});
  expect_close(relu(x), {0, 0, 0.5f, 3});
  expect_close(exp(x), {std::exp(-2.0f), std::exp(-0.5f), std::exp(0.5f), std::exp(3.0f)});
  expect_close(tanh(x), {std::tanh(-2.0f), std::tanh(-0.5f), std::tanh(0.5f), std::tanh(3.0f)});
  expect_close(sigmoid(x), {1 / (1 + std::exp(2.0f)), 1 / (1 + std::exp(0.5f)),
                            1 / (1 + std::exp(-0.5f)), 1 / (1 + std::exp(-3.0f))});
  Tensor p = from_vector({0.25f, 1.0f, 4.0f});
  expect_close(log(p), {std::log(0.25f), 0, std::log(4.0f)});
  expect_close(sqrt(p), {0.5f, 1, 2});
  expect_close(pow(p, 3.0f), {0.015625f, 1, 64});
  expect_close(x + 1.0f, {-1, 0.5f, 1.5f, 4});
  expect_close(1.0f - x, {3, 1.5f, 0.5f, -2});
  expect_close(x / 2.0f, {-1, -0.25f, 0.25f, 1.5f});
  expect_close(2.0f / p, {8, 2, 0.5f});
}

TEST(Elementwise, SigmoidIsStableForLargeInputs) {
  Tensor s = sigmoid(from_vector({-1000.0f, -88.0f, 0.0f, 88.0f, 1000.0f}));
  std::vector<float> v = s.to_vector();
  EXPECT_EQ(v[0], 0.0f);
  EXPECT_GT(v[1], 0.0f);
  EXPECT_EQ(v[2], 0.5f);
  EXPECT_EQ(v[4], 1.0f);
  for (float f : v) EXPECT_FALSE(std::isnan(f));
}

TEST(Elementwise, BroadcastingFollowsPyTorch) {
  Tensor a = arange(0.0, 6.0).reshape({2, 3});
  Tensor row = from_vector({10.0f, 20.0f, 30.0f});
  Tensor col = from_vector({100.0f, 200.0f}, {2, 1});
  expect_close(a + row, {10, 21, 32, 13, 24, 35});
  expect_close(a + col, {100, 101, 102, 203, 204, 205});
  Tensor outer = col * row;  // [2,1] x [3] -> [2,3]
  EXPECT_EQ(outer.shape(), (Shape{2, 3}));
  expect_close(outer, {1000, 2000, 3000, 2000, 4000, 6000});
  EXPECT_EQ((zeros({4, 1, 3}) - zeros({2, 3})).shape(), (Shape{4, 2, 3}));
  EXPECT_EQ((scalar(2.0f) * a).shape(), (Shape{2, 3}));
  EXPECT_EQ(broadcast_shapes("t", {5, 1, 4}, {3, 1}), (Shape{5, 3, 4}));
}

TEST(Elementwise, MismatchedShapesAreAnError) {
  expect_error([] { zeros({2, 3}) + zeros({4}); }, {"add", "[2, 3]", "[4]"});
  expect_error([] { mul(zeros({2}, kInt64), zeros({2})); }, {"mul", "float32", "int64"});
}

TEST(ElementwiseGrad, UnaryOps) {
  auto x = param({3, 4}, -2.0f, 2.0f, 1);
  auto positive = param({3, 4}, 0.5f, 3.0f, 2);
  expect_gradcheck([](auto& in) { return neg(in[0]); }, {x});
  expect_gradcheck([](auto& in) { return exp(in[0]); }, {x});
  expect_gradcheck([](auto& in) { return log(in[0]); }, {positive});
  expect_gradcheck([](auto& in) { return sqrt(in[0]); }, {positive});
  expect_gradcheck([](auto& in) { return sigmoid(in[0]); }, {x});
  expect_gradcheck([](auto& in) { return tanh(in[0]); }, {x});
  expect_gradcheck([](auto& in) { return pow(in[0], 3.0f); }, {x});
  expect_gradcheck([](auto& in) { return pow(in[0], -1.5f); }, {positive});
  // relu: keep inputs away from the kink at 0, where the derivative jumps.
  Tensor away = from_vector({-1.5f, -0.3f, 0.2f, 1.1f, 2.0f}, {}, grad_opts());
  expect_gradcheck([](auto& in) { return relu(in[0]); }, {away});
}

TEST(ElementwiseGrad, BinaryOpsSameShapeAndBroadcast) {
  auto a = param({2, 3, 4}, -2.0f, 2.0f, 3);
  auto b = param({2, 3, 4}, 0.5f, 2.0f, 4);
  auto row = param({4}, 0.5f, 2.0f, 5);
  auto col = param({3, 1}, 0.5f, 2.0f, 6);
  auto base = param({2, 3, 4}, 0.5f, 2.0f, 7);
  for (const auto& other : {b, row, col}) {
    expect_gradcheck([](auto& in) { return add(in[0], in[1]); }, {a, other});
    expect_gradcheck([](auto& in) { return sub(in[0], in[1]); }, {a, other});
    expect_gradcheck([](auto& in) { return mul(in[0], in[1]); }, {a, other});
    expect_gradcheck([](auto& in) { return div(in[0], in[1]); }, {a, other});
    expect_gradcheck([](auto& in) { return pow(in[0], in[1]); }, {base, other});
    // The broadcast side first, too.
    expect_gradcheck([](auto& in) { return sub(in[1], in[0]); }, {a, other});
  }
}

TEST(ElementwiseGrad, ScalarForms) {
  auto x = param({5}, 0.5f, 2.0f, 8);
  expect_gradcheck([](auto& in) { return in[0] * 2.5f + 1.0f; }, {x});
  expect_gradcheck([](auto& in) { return 3.0f - in[0] / 4.0f; }, {x});
  expect_gradcheck([](auto& in) { return 2.0f / in[0]; }, {x});
}

TEST(ElementwiseGrad, OnlyInputsThatRequireGradGetOne) {
  Tensor a = from_vector({1.0f, 2.0f}, {}, grad_opts());
  Tensor b = from_vector({3.0f, 4.0f});
  sum(a * b).backward();
  expect_close(a.grad(), {3, 4});
  EXPECT_FALSE(b.grad().defined());
}

}  // namespace
}  // namespace bridle
