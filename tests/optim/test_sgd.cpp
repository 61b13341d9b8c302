// SGD: the update rule against a hand-written reference (PyTorch's formula, in
// double), option validation, and a small problem the optimizer must solve.
#include <gtest/gtest.h>

#include <cmath>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_error;

// PyTorch's SGD for one scalar parameter and a fixed sequence of gradients.
std::vector<double> reference_sgd(double p, const std::vector<double>& grads, const SGDOptions& o) {
  std::vector<double> trajectory;
  double buf = 0;
  for (size_t t = 0; t < grads.size(); ++t) {
    double g = grads[t] + o.weight_decay * p;
    if (o.momentum != 0) {
      buf = t == 0 ? g : o.momentum * buf + (1 - o.dampening) * g;
      g = o.nesterov ? g + o.momentum * buf : buf;
    }
    p -= o.lr * g;
    trajectory.push_back(p);
  }
  return trajectory;
}

TEST(SGD, FollowsPyTorchUpdateRule) {
  std::vector<double> grads;
  for (int t = 0; t < 30; ++t) grads.push_back(std::sin(0.7 * t) + 0.3);
  std::vector<SGDOptions> cases = {
      {0.1f, 0.0f, 0.0f, 0.0f, false},  {0.1f, 0.9f, 0.0f, 0.0f, false},
      {0.1f, 0.9f, 0.1f, 0.0f, false},  {0.05f, 0.9f, 0.0f, 0.0f, true},
      {0.1f, 0.5f, 0.0f, 0.01f, false}, {0.1f, 0.0f, 0.0f, 0.1f, false},
  };
  for (const SGDOptions& o : cases) {
    Tensor p = from_vector({1.5f}, {}, TensorOptions().with_requires_grad());
    SGD sgd({p}, o);
    std::vector<double> expected = reference_sgd(1.5, grads, o);
    for (size_t t = 0; t < grads.size(); ++t) {
      p.set_grad(from_vector({static_cast<float>(grads[t])}));
      sgd.step();
      ASSERT_NEAR(p.item(), expected[t], 1e-5 * (1 + std::abs(expected[t])))
          << "step " << t << " momentum " << o.momentum << " nesterov " << o.nesterov;
    }
  }
}

TEST(SGD, SkipsParametersWithoutGradient) {
  Tensor a = ones({2}, TensorOptions().with_requires_grad());
  Tensor b = ones({2}, TensorOptions().with_requires_grad());
  SGD sgd({a, b}, {0.5f, 0.9f});
  a.set_grad(ones({2}));
  sgd.step();
  EXPECT_EQ(a.to_vector(), (std::vector<float>{0.5f, 0.5f}));
  EXPECT_EQ(b.to_vector(), (std::vector<float>{1.0f, 1.0f}));
  EXPECT_FALSE(sgd.momentum_buffer(1).defined());
}

TEST(SGD, InvalidOptionsAreErrors) {
  Tensor p = ones({1}, TensorOptions().with_requires_grad());
  expect_error([&] { SGD({p}, {-0.1f}); }, {"learning rate", "-0.1"});
  expect_error([&] { SGD({p}, {0.1f, 0.0f, 0.0f, 0.0f, true}); }, {"Nesterov"});
  expect_error([&] { SGD({ones({1})}, {0.1f}); }, {"requires grad"});
  expect_error([&] { SGD({}, {0.1f}); }, {"empty"});
}

// Logistic regression on a fixed, linearly separable problem: the loss must fall
// well below its starting value for plain, momentum and Nesterov SGD.
TEST(SGD, SolvesASmallClassificationProblem) {
  Generator gen(7);
  Tensor x = randn({200, 5}, gen);
  Tensor true_w = randn({3, 5}, gen);
  Tensor y = argmax(matmul(x, true_w.transpose(0, 1)), 1);
  for (SGDOptions o :
       {SGDOptions{0.5f}, SGDOptions{0.1f, 0.9f}, SGDOptions{0.1f, 0.9f, 0.0f, 0.0f, true}}) {
    Generator init(1);
    Linear model(5, 3, true, init);
    SGD sgd(model.parameters(), o);
    float first = 0, last = 0;
    for (int step = 0; step < 200; ++step) {
      sgd.zero_grad();
      Tensor loss = cross_entropy(model.forward(x), y);
      loss.backward();
      sgd.step();
      if (step == 0) first = loss.item();
      last = loss.item();
    }
    EXPECT_LT(last, 0.25f * first) << "momentum " << o.momentum;
    Tensor predicted = argmax(model.forward(x), 1);
    int64_t correct = 0;
    for (int64_t i = 0; i < 200; ++i) correct += predicted.at({i}) == y.at({i});
    EXPECT_GE(correct, 185);
  }
}

}  // namespace
}  // namespace bridle
