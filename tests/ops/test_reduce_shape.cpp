// Reductions and shape ops: values, keepdim, errors, gradient checks.
#include <gtest/gtest.h>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;
using testing::expect_gradcheck;

using testing::grad_opts;

TEST(Reduce, SumMeanMaxArgmaxValues) {
  Tensor x = from_vector({1.0f, 5.0f, 3.0f, 4.0f, 2.0f, 6.0f}, {2, 3});
  expect_close(sum(x), {21});
  EXPECT_EQ(sum(x).dim(), 0);
  expect_close(mean(x), {3.5f});
  expect_close(sum(x, 0), {5, 7, 9});
  expect_close(sum(x, -1), {9, 12});
  EXPECT_EQ(sum(x, 1, true).shape(), (Shape{2, 1}));
  expect_close(mean(x, 1), {3, 4});
  expect_close(max(x, 1), {5, 6});
  expect_close(max(x, 0), {4, 5, 6});
  EXPECT_EQ(argmax(x, 1).to_int_vector(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(argmax(x, 0, true).shape(), (Shape{1, 3}));
  EXPECT_EQ(argmax(from_vector({2.0f, 7.0f, 7.0f}), 0).to_int_vector(), (std::vector<int64_t>{1}));
}

TEST(Reduce, SumToUndoesBroadcasting) {
  Tensor g = ones({4, 2, 3});
  expect_close(sum_to(g, {3}), {8, 8, 8});
  expect_close(sum_to(g, {2, 1}), {12, 12});
  expect_error([] { sum_to(ones({2, 3}), {4}); }, {"sum_to", "[4]"});
}

TEST(Reduce, Errors) {
  expect_error([] { sum(zeros({2, 3}), 2); }, {"sum", "dim 2", "rank 2"});
  expect_error([] { argmax(zeros({0, 3}), 0); }, {"argmax", "[0, 3]"});
}

TEST(ReduceGrad, AllReductions) {
  Generator gen(21);
  Tensor x = randn({3, 4, 2}, gen, grad_opts());
  for (int64_t dim : {0, 1, 2, -1}) {
    for (bool keepdim : {false, true}) {
      expect_gradcheck([dim, keepdim](auto& in) { return sum(in[0], dim, keepdim); }, {x});
      expect_gradcheck([dim, keepdim](auto& in) { return mean(in[0], dim, keepdim); }, {x});
      expect_gradcheck([dim, keepdim](auto& in) { return max(in[0], dim, keepdim); }, {x});
    }
  }
  expect_gradcheck([](auto& in) { return sum(in[0]); }, {x});
  expect_gradcheck([](auto& in) { return mean(in[0]); }, {x});
}

TEST(Shape, ReshapeFlattenTransposeSliceCat) {
  Tensor x = arange(0.0, 6.0).reshape({2, 3});
  EXPECT_EQ(flatten(zeros({4, 1, 28, 28})).shape(), (Shape{4, 784}));
  EXPECT_EQ(flatten(zeros({4, 1, 28, 28}), 0, 1).shape(), (Shape{4, 28, 28}));
  Tensor t = x.transpose(0, 1);
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  expect_close(t, {0, 3, 1, 4, 2, 5});
  Tensor y = arange(0.0, 24.0).reshape({2, 3, 4});
  Tensor yt = transpose(y, 0, 2);
  EXPECT_EQ(yt.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(yt.at({3, 1, 1}), y.at({1, 1, 3}));
  // A dim with itself moves nothing (it used to write past the output's end).
  expect_close(transpose(y, 1, 1), y, 0, 0);
  expect_close(transpose(y, -1, 2), y, 0, 0);
  Tensor leaf = arange(0.0, 12.0).reshape({3, 4}).detach().set_requires_grad();
  transpose(leaf, 1, -1).backward(full({3, 4}, 2.0f));
  expect_close(leaf.grad(), full({3, 4}, 2.0f), 0, 0);
  expect_close(x.slice(1, 2), {3, 4, 5});
  Tensor c = cat({x, from_vector({9.0f, 9.0f, 9.0f}, {1, 3})}, 0);
  EXPECT_EQ(c.shape(), (Shape{3, 3}));
  Tensor c1 = cat({x, zeros({2, 1})}, 1);
  expect_close(c1, {0, 1, 2, 0, 3, 4, 5, 0});
  Tensor ints = cat({arange(2, kInt64), arange(3, kInt64)});
  EXPECT_EQ(ints.to_int_vector(), (std::vector<int64_t>{0, 1, 0, 1, 2}));
}

TEST(Shape, Errors) {
  expect_error([] { zeros({2, 3}).reshape({4, 2}); }, {"reshape", "[2, 3]", "[4, 2]"});
  expect_error([] { zeros({2, 3}).reshape({-1, -1}); }, {"more than one -1"});
  expect_error([] { zeros({2, 3}).slice(1, 5); }, {"slice", "[1, 5)", "[2, 3]"});
  expect_error([] { cat({zeros({2, 3}), zeros({2, 4})}, 0); }, {"cat", "[2, 4]", "[2, 3]"});
  expect_error([] { transpose(zeros({2, 3}), 0, 3); }, {"transpose", "dim 3"});
}

TEST(ShapeGrad, AllShapeOps) {
  Generator gen(4);
  Tensor x = randn({4, 3}, gen, grad_opts());
  Tensor y = randn({2, 3}, gen, grad_opts());
  expect_gradcheck([](auto& in) { return in[0].reshape({2, 6}) * 2.0f; }, {x});
  expect_gradcheck([](auto& in) { return flatten(in[0], 0) * 2.0f; }, {x});
  expect_gradcheck([](auto& in) { return in[0].transpose(0, 1); }, {x});
  expect_gradcheck([](auto& in) { return in[0].slice(1, 3); }, {x});
  expect_gradcheck([](auto& in) { return cat({in[0], in[1]}, 0); }, {x, y});
  expect_gradcheck([](auto& in) { return cat({in[0], in[0]}, 1); }, {x});
  Tensor z = randn({2, 3, 4}, gen, grad_opts());
  expect_gradcheck([](auto& in) { return transpose(in[0], 0, 2); }, {z});
  expect_gradcheck([](auto& in) { return transpose(in[0], 1, 2); }, {z});
}

}  // namespace
}  // namespace bridle
