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
  expect_error([&] { SGD(std::vector<Tensor>{}, {0.1f}); }, {"empty"});
}

// Each parameter group uses its own lr and weight decay; unset values come from
// the options. weight_decay_groups() exempts one-dimensional parameters.
TEST(SGD, ParameterGroupsHaveTheirOwnLearningRateAndWeightDecay) {
  auto leaf = [](float v) { return from_vector({v}, {1}, TensorOptions().with_requires_grad()); };
  Tensor a = leaf(1.0f), b = leaf(1.0f), c = leaf(1.0f);
  SGD sgd({{.params = {a}}, {.params = {b}, .lr = 0.5f}, {.params = {c}, .weight_decay = 0.0f}},
          {.lr = 0.1f, .weight_decay = 1.0f});
  ASSERT_EQ(sgd.num_param_groups(), 3u);
  for (Tensor p : {a, b, c}) p.set_grad(ones({1}));
  sgd.step();
  EXPECT_FLOAT_EQ(a.item(), 1.0f - 0.1f * (1.0f + 1.0f));
  EXPECT_FLOAT_EQ(b.item(), 1.0f - 0.5f * (1.0f + 1.0f));
  EXPECT_FLOAT_EQ(c.item(), 1.0f - 0.1f * 1.0f);
  sgd.set_lr(1, 0.25f);
  EXPECT_EQ(sgd.lr(1), 0.25f);
  EXPECT_EQ(sgd.param_group(1).initial_lr, 0.5f);
  sgd.set_lr(0.01f);
  EXPECT_EQ(sgd.lr(0), 0.01f);
  EXPECT_EQ(sgd.lr(2), 0.01f);

  Linear layer(3, 2);
  std::vector<ParamGroup> groups = weight_decay_groups(layer.parameters());
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].params.size(), 1u);  // weight
  EXPECT_FALSE(groups[0].weight_decay.has_value());
  EXPECT_EQ(groups[1].params[0].dim(), 1);  // bias
  EXPECT_EQ(groups[1].weight_decay.value(), 0.0f);

  expect_error([&] { SGD({{.params = {a}}, {.params = {a}}}, {0.1f}); }, {"appears twice"});
  expect_error([&] { SGD({{.params = {a}, .lr = -1.0f}}, {0.1f}); },
               {"group 0", "learning rate", "-1"});
  expect_error([&] { sgd.set_lr(7, 0.1f); }, {"no parameter group 7"});
}

// state() carries the groups' settings; load_state() restores them and refuses
// a state whose groups differ. A state without groups (older files) loads into
// a one-group optimizer with the options' lr.
TEST(SGD, StateCarriesParameterGroups) {
  auto leaf = [] { return ones({2}, TensorOptions().with_requires_grad()); };
  Tensor a = leaf(), b = leaf();
  SGD sgd({{.params = {a}}, {.params = {b}, .lr = 0.5f, .weight_decay = 0.0f}},
          {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 1e-4f});
  sgd.set_lr(1, 0.05f);
  OptimizerState state = sgd.state();
  ASSERT_EQ(state.param_groups.size(), 2u);
  EXPECT_EQ(state.param_groups[1].at("lr"), 0.05f);
  EXPECT_EQ(state.param_groups[1].at("initial_lr"), 0.5f);

  SGD other({{.params = {a}}, {.params = {b}}}, {.lr = 0.1f, .momentum = 0.9f});
  other.load_state(state);
  EXPECT_EQ(other.lr(1), 0.05f);
  EXPECT_EQ(other.param_group(1).initial_lr, 0.5f);
  EXPECT_EQ(other.param_group(1).weight_decay, 0.0f);
  EXPECT_EQ(other.param_group(0).weight_decay, 1e-4f);

  SGD one_group({a, b}, {.lr = 0.1f, .momentum = 0.9f});
  expect_error([&] { one_group.load_state(state); }, {"2 parameter groups", "optimizer 1"});
  SGD sizes({{.params = {a, b}}, {.params = {leaf()}}}, {.lr = 0.1f, .momentum = 0.9f});
  expect_error([&] { sizes.load_state(state); }, {"group 0", "1 parameters in the state", "2"});

  OptimizerState old = state;
  old.param_groups.clear();
  one_group.load_state(old);
  EXPECT_EQ(one_group.lr(), 0.1f);
  EXPECT_EQ(one_group.param_group(0).weight_decay, 1e-4f);
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
