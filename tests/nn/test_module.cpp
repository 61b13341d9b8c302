// Module: registration and names, train/eval, zero_grad, Linear's init and
// forward, Sequential, and a custom user layer.
#include <gtest/gtest.h>

#include <cmath>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;

struct Mlp : Module {
  std::shared_ptr<Linear> fc1, fc2;
  Mlp() : Module("Mlp") {
    fc1 = register_module("fc1", std::make_shared<Linear>(6, 4));
    fc2 = register_module("fc2", std::make_shared<Linear>(4, 3, /*bias=*/false));
  }
  Tensor forward(const Tensor& x) override { return fc2->forward(relu(fc1->forward(x))); }
};

// A user layer with its own parameter and a buffer.
struct Scale : Module {
  Tensor gain, calls;
  Scale() : Module("Scale") {
    gain = register_parameter("gain", ones({3}));
    calls = register_buffer("calls", zeros({1}));
  }
  Tensor forward(const Tensor& x) override { return x * gain; }
};

TEST(Module, NamesBecomeDottedKeys) {
  Mlp mlp;
  std::vector<std::string> names;
  for (auto& [name, t] : mlp.named_parameters()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight"}));
  EXPECT_EQ(mlp.parameters().size(), 3u);
  EXPECT_EQ(mlp.num_parameters(), 6 * 4 + 4 + 4 * 3);
  EXPECT_EQ(mlp.named_parameters(/*recurse=*/false).size(), 0u);
  for (const Tensor& p : mlp.parameters()) EXPECT_TRUE(p.requires_grad());
  EXPECT_NE(mlp.str().find("(fc1): Linear(in_features=6, out_features=4, bias=true)"),
            std::string::npos);
}

TEST(Module, SequentialNamesByIndex) {
  Sequential seq{std::make_shared<Flatten>(), std::make_shared<Linear>(4, 2),
                 std::make_shared<ReLU>()};
  auto named = seq.named_parameters();
  ASSERT_EQ(named.size(), 2u);
  EXPECT_EQ(named[0].first, "1.weight");
  EXPECT_EQ(named[1].first, "1.bias");
  EXPECT_EQ(seq.forward(ones({3, 2, 2})).shape(), (Shape{3, 2}));
}

TEST(Module, BuffersAndTrainEval) {
  Sequential seq{std::make_shared<Scale>(), std::make_shared<Scale>()};
  EXPECT_EQ(seq.named_buffers().size(), 2u);
  EXPECT_EQ(seq.named_buffers()[1].first, "1.calls");
  EXPECT_TRUE(seq.is_training());
  seq.eval();
  for (auto& [name, child] : seq.named_children()) EXPECT_FALSE(child->is_training());
  seq.train();
  EXPECT_TRUE(seq.named_children()[0].second->is_training());
}

TEST(Module, BadRegistrationsAreErrors) {
  struct Dup : Module {
    Dup() : Module("Dup") {
      register_parameter("w", ones({1}));
      register_parameter("w", ones({1}));
    }
  };
  expect_error([] { Dup d; }, {"Dup", "'w'", "already registered"});
  struct Dotted : Module {
    Dotted() : Module("Dotted") { register_parameter("a.b", ones({1})); }
  };
  expect_error([] { Dotted d; }, {"'a.b'"});
  expect_error(
      [] {
        Module m;
        m.forward(ones({1}));
      },
      {"forward"});
}

TEST(Module, ZeroGradClearsEveryParameter) {
  Mlp mlp;
  sum(mlp.forward(ones({2, 6}))).backward();
  for (const Tensor& p : mlp.parameters()) ASSERT_TRUE(p.grad().defined());
  mlp.zero_grad();
  for (const Tensor& p : mlp.parameters())
    for (float g : p.grad().to_vector()) EXPECT_EQ(g, 0.0f);
}

TEST(Linear, InitializesLikePyTorchAndComputesXWtPlusB) {
  Generator gen(0);
  Linear fc(400, 300, true, gen);
  float bound = 1.0f / std::sqrt(400.0f);
  float lo = 1, hi = -1;
  for (float w : fc.weight.to_vector()) {
    lo = std::min(lo, w);
    hi = std::max(hi, w);
  }
  EXPECT_GE(lo, -bound);
  EXPECT_LE(hi, bound);
  EXPECT_LT(lo, -0.95f * bound);  // spans the whole interval
  EXPECT_GT(hi, 0.95f * bound);
  for (float b : fc.bias.to_vector()) EXPECT_LE(std::abs(b), bound);
  Tensor x = randn({5, 400}, gen);
  expect_close(fc.forward(x), matmul(x, fc.weight.transpose(0, 1)) + fc.bias, 1e-5f, 1e-4f);
}

TEST(Linear, GradcheckThroughTheModule) {
  Generator gen(1);
  auto fc = std::make_shared<Linear>(3, 2, true, gen);
  testing::expect_gradcheck([fc](auto& in) { return fc->forward(in[0]); },
                            {randn({4, 3}, gen, TensorOptions().with_requires_grad())});
}

TEST(ModuleTo, TheSameDeviceKeepsEverythingAndAMissingDeviceChangesNothing) {
  Generator gen(2);
  auto fc = std::make_shared<Linear>(3, 2, true, gen);
  sum(fc->forward(randn({4, 3}, gen))).backward();
  const std::vector<float> weight = fc->weight.to_vector(), grad = fc->weight.grad().to_vector();
  fc->to(Device::cpu());
  EXPECT_EQ(fc->weight.to_vector(), weight);
  EXPECT_EQ(fc->weight.grad().to_vector(), grad);  // nothing moved, nothing dropped
  if (!cuda_is_available()) {
    expect_error([&] { fc->to(Device::cuda()); }, {"cuda"});
    EXPECT_TRUE(fc->weight.device().is_cpu());
    EXPECT_EQ(fc->weight.to_vector(), weight);
    EXPECT_TRUE(fc->weight.grad().defined());
  }
}

}  // namespace
}  // namespace bridle
