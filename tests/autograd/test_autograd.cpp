// The tape: backward, accumulation, grad mode, graph release, custom functions,
// gradcheck itself, and the DOT dump.
#include <gtest/gtest.h>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;

Tensor leaf(const std::vector<float>& values, const Shape& shape = {}) {
  return from_vector(values, shape, TensorOptions().with_requires_grad());
}

TEST(Autograd, ChainRuleThroughSeveralOps) {
  Tensor x = leaf({1.0f, 2.0f, 3.0f});
  Tensor y = sum(x * x * 3.0f + x);  // dy/dx = 6x + 1
  y.backward();
  expect_close(x.grad(), {7, 13, 19});
}

TEST(Autograd, TensorUsedTwiceAccumulates) {
  Tensor x = leaf({2.0f});
  Tensor y = x * x;  // both inputs are x: dy/dx = 2x
  y.backward();
  expect_close(x.grad(), {4});
}

TEST(Autograd, GradientsAccumulateAcrossBackwardsUntilZeroed) {
  Tensor x = leaf({1.0f, -1.0f});
  sum(x * 2.0f).backward();
  sum(x * 2.0f).backward();
  expect_close(x.grad(), {4, 4});
  x.zero_grad();
  expect_close(x.grad(), {0, 0});
  x.zero_grad(/*set_to_none=*/true);
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, BackwardWithGivenGradient) {
  Tensor x = leaf({1.0f, 2.0f});
  Tensor y = x * 3.0f;
  y.backward(from_vector({1.0f, 10.0f}));
  expect_close(x.grad(), {3, 30});
}

TEST(Autograd, NonScalarBackwardNeedsAGradient) {
  Tensor x = leaf({1.0f, 2.0f});
  expect_error([&] { (x * 2.0f).backward(); }, {"scalar", "[2]"});
  expect_error([&] { (x * 2.0f).backward(ones({3})); }, {"[3]", "[2]"});
}

TEST(Autograd, NoGradGuardAndDetachStopRecording) {
  Tensor x = leaf({1.0f});
  {
    NoGradGuard guard;
    Tensor y = x * 2.0f;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.is_leaf());
  }
  EXPECT_TRUE(grad_enabled());
  Tensor d = (x * 2.0f).detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.item(), 2.0f);
  Tensor z = x * d;  // d is a constant now: dz/dx = d
  z.backward();
  expect_close(x.grad(), {2});
  expect_error([] { (ones({1}) * 2.0f).backward(); }, {"does not require grad"});
}

TEST(Autograd, GraphIsReleasedAfterBackwardUnlessRetained) {
  Tensor x = leaf({1.0f, 2.0f});
  Tensor y = sum(exp(x));
  y.backward(/*retain_graph=*/true);
  y.backward();  // the graph was retained, so this works and accumulates
  expect_close(x.grad(), {2 * std::exp(1.0f), 2 * std::exp(2.0f)}, 1e-4f);
  EXPECT_TRUE(y.grad_fn()->released());
  EXPECT_TRUE(y.grad_fn()->inputs().empty());  // saved tensors are gone
  expect_error([&] { y.backward(); }, {"already freed", "retain_graph"});
}

TEST(Autograd, ReleasingTheGraphFreesSavedActivations) {
  Tensor x = leaf(std::vector<float>(1 << 16, 0.5f));
  Tensor hidden = exp(x);  // saved by the next op for its backward
  std::weak_ptr<TensorImpl> watch = hidden.impl_ptr();
  Tensor loss = sum(hidden * hidden);
  hidden = Tensor();
  EXPECT_FALSE(watch.expired());  // the tape keeps it alive
  loss.backward();
  EXPECT_TRUE(watch.expired());  // released with the graph
}

TEST(Autograd, NonLeafGradsAreFreedUnlessRetained) {
  Tensor x = leaf({3.0f});
  Tensor h = x * 2.0f;
  Tensor k = x * 4.0f;
  k.retain_grad();
  sum(h * k).backward();
  EXPECT_FALSE(h.grad().defined());
  expect_close(k.grad(), {6});   // d(h k)/dk = h = 6
  expect_close(x.grad(), {48});  // d(8 x^2)/dx = 16 x
}

TEST(Autograd, BranchesWithoutGradientAreSkipped) {
  Tensor x = leaf({1.0f});
  Tensor unused = x * 5.0f;  // never reaches the loss
  Tensor y = x * 2.0f;
  y.backward();
  expect_close(x.grad(), {2});
}

// A user op with its own backward: y = x^3, saved input as a member.
struct Cube : Function {
  Tensor x;
  std::string name() const override { return "Cube"; }
  Tensor forward(const std::vector<Tensor>& inputs) override {
    x = inputs[0];
    return x * x * x;
  }
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    return {grad_output * x * x * 3.0f};
  }
};

// A deliberately wrong backward, to show gradcheck can fail.
struct WrongCube : Cube {
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    return {grad_output * x * x * 2.0f};
  }
};

// A function of two inputs that only differentiates the first.
struct ScaleBy : Function {
  Tensor scale;
  Tensor forward(const std::vector<Tensor>& in) override {
    scale = in[1];
    return in[0] * in[1];
  }
  std::vector<Tensor> backward(const Tensor& g) override { return {g * scale, Tensor()}; }
};

TEST(CustomFunction, ForwardBackwardAndGradcheck) {
  Tensor x = leaf({1.0f, -2.0f});
  Tensor y = Function::apply<Cube>({x});
  EXPECT_EQ(y.grad_fn()->name(), "Cube");
  expect_close(y, {1, -8});
  sum(y).backward();
  expect_close(x.grad(), {3, 12});
  testing::expect_gradcheck([](const std::vector<Tensor>& in) { return Function::apply<Cube>(in); },
                            {randn({5}, TensorOptions().with_requires_grad())});
}

TEST(CustomFunction, GradcheckCatchesAWrongBackward) {
  GradcheckResult result =
      gradcheck([](const std::vector<Tensor>& in) { return Function::apply<WrongCube>(in); },
                {from_vector({0.5f, 1.5f}, {}, TensorOptions().with_requires_grad())});
  EXPECT_FALSE(result.ok);
  EXPECT_NE(result.message.find("finite differences"), std::string::npos);
}

TEST(CustomFunction, UndefinedGradientMeansNone) {
  Tensor x = leaf({2.0f});
  Tensor s = leaf({5.0f});
  sum(Function::apply<ScaleBy>({x, s})).backward();
  expect_close(x.grad(), {5});
  EXPECT_FALSE(s.grad().defined());
}

TEST(CustomFunction, WrongGradientShapeIsAnError) {
  struct Bad : Function {
    Tensor forward(const std::vector<Tensor>& in) override { return in[0] * 2.0f; }
    std::vector<Tensor> backward(const Tensor&) override { return {ones({7})}; }
  };
  Tensor x = leaf({1.0f, 2.0f});
  Tensor y = Function::apply<Bad>({x});
  expect_error([&] { sum(y).backward(); }, {"Function", "[7]", "[2]"});
}

TEST(Graphviz, DumpNamesOpsAndShapes) {
  Tensor x = randn({4, 3}, TensorOptions().with_requires_grad());
  Tensor w = randn({2, 3}, TensorOptions().with_requires_grad());
  Tensor loss = sum(relu(linear(x, w)));
  std::string dot = to_dot(loss);
  EXPECT_NE(dot.find("digraph"), std::string::npos);
  EXPECT_NE(dot.find("linear\\n[4, 2]"), std::string::npos);
  EXPECT_NE(dot.find("relu\\n[4, 2]"), std::string::npos);
  EXPECT_NE(dot.find("sum\\n[]"), std::string::npos);
  EXPECT_NE(dot.find("[2, 3]\\nrequires_grad"), std::string::npos);
}

TEST(Autograd, DeepChainsDoNotOverflowTheStack) {
  Tensor x = leaf({1.0f});
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = y * 1.0f;
  y.backward();
  expect_close(x.grad(), {1});
}

}  // namespace
}  // namespace bridle
