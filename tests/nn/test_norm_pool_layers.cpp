// Pooling, batch norm, dropout and activation layers: checkpoint names, train vs
// eval behaviour, running statistics, seeded dropout, printing, and a small
// model built from them that trains end to end.
#include <gtest/gtest.h>

#include <cmath>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;

struct Block : Module {
  std::shared_ptr<BatchNorm2d> bn;
  std::shared_ptr<MaxPool2d> pool;
  Block() : Module("Block") {
    bn = register_module("bn", std::make_shared<BatchNorm2d>(4));
    pool = register_module("pool", std::make_shared<MaxPool2d>(2));
  }
  Tensor forward(const Tensor& x) override { return pool->forward(relu(bn->forward(x))); }
};

std::vector<std::string> names(const std::vector<std::pair<std::string, Tensor>>& named) {
  std::vector<std::string> out;
  for (const auto& [name, t] : named) out.push_back(name);
  return out;
}

TEST(BatchNormLayer, CheckpointNamesMatchPyTorch) {
  Block block;
  EXPECT_EQ(names(block.named_parameters()), (std::vector<std::string>{"bn.weight", "bn.bias"}));
  EXPECT_EQ(
      names(block.named_buffers()),
      (std::vector<std::string>{"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"}));
  expect_close(block.bn->weight, {1, 1, 1, 1}, 0, 0);
  expect_close(block.bn->bias, {0, 0, 0, 0}, 0, 0);
  expect_close(block.bn->running_mean, {0, 0, 0, 0}, 0, 0);
  expect_close(block.bn->running_var, {1, 1, 1, 1}, 0, 0);
  EXPECT_EQ(block.bn->num_batches_tracked.dtype(), kInt64);
  EXPECT_EQ(block.bn->num_batches_tracked.dim(), 0);

  BatchNorm1d plain(3, 1e-5f, 0.1f, /*affine=*/false, /*track_running_stats=*/false);
  EXPECT_TRUE(plain.named_parameters().empty());
  EXPECT_TRUE(plain.named_buffers().empty());
}

TEST(BatchNormLayer, TrainUpdatesRunningStatsEvalUsesThem) {
  Generator gen(1);
  BatchNorm2d bn(3, 1e-5f, /*momentum=*/0.5f);
  Tensor x = randn({4, 3, 5, 5}, gen) * 2.0f + 3.0f;
  Tensor y_train = bn(x);
  EXPECT_EQ(bn.num_batches_tracked.at({}), 1);
  // The layer is the op with its own state.
  Tensor rm = zeros({3}), rv = ones({3});
  expect_close(y_train, batch_norm(x, rm, rv, ones({3}), zeros({3}), true, 0.5f), 1e-6f, 1e-6f);
  expect_close(bn.running_mean, rm, 0, 0);
  expect_close(bn.running_var, rv, 0, 0);
  bn(x);
  EXPECT_EQ(bn.num_batches_tracked.at({}), 2);

  bn.eval();
  std::vector<float> mean_before = bn.running_mean.to_vector();
  Tensor y_eval = bn(x);
  EXPECT_EQ(bn.running_mean.to_vector(), mean_before);
  EXPECT_EQ(bn.num_batches_tracked.at({}), 2);
  expect_close(y_eval, batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, false), 0,
               0);
  // A single sample is fine in eval, an error in training.
  EXPECT_EQ(bn(x.slice(0, 1).slice(0, 1)).shape(), (Shape{1, 3, 5, 5}));
  bn.train();
  expect_error([&] { bn(randn({1, 3, 1, 1}, gen)); }, {"more than 1 value per channel"});
}

TEST(BatchNormLayer, WithoutRunningStatsEvalStillUsesTheBatch) {
  Generator gen(2);
  BatchNorm1d bn(2, 1e-5f, 0.1f, true, /*track_running_stats=*/false);
  bn.eval();
  Tensor x = randn({6, 2}, gen) + 5.0f;
  expect_close(bn(x), batch_norm(x, Tensor(), Tensor(), bn.weight, bn.bias, true), 0, 0);
}

TEST(BatchNormLayer, InputRankAndChannelsAreChecked) {
  BatchNorm1d bn1(3);
  EXPECT_EQ(bn1(ones({4, 3})).shape(), (Shape{4, 3}));
  EXPECT_EQ(bn1(ones({4, 3, 7})).shape(), (Shape{4, 3, 7}));
  expect_error([&] { bn1(ones({4, 3, 2, 2})); }, {"BatchNorm1d", "2-D or 3", "[4, 3, 2, 2]"});
  BatchNorm2d bn2(3);
  expect_error([&] { bn2(ones({4, 3, 2})); }, {"BatchNorm2d", "4-D", "[4, 3, 2]"});
  expect_error([&] { bn2(ones({4, 5, 2, 2})); }, {"BatchNorm2d", "5 channels", "expected 3"});
  expect_error([] { BatchNorm2d(0); }, {"BatchNorm2d", "num_features", "0"});
}

TEST(PoolLayers, ForwardIsTheOpAndPrintsLikePyTorch) {
  Generator gen(3);
  Tensor x = randn({2, 3, 9, 9}, gen);
  MaxPool2d max(3, 2, 1);
  AvgPool2d avg({3, 2}, {2, 1});
  AdaptiveAvgPool2d global(1);
  expect_close(max(x), max_pool2d(x, 3, 2, 1), 0, 0);
  expect_close(avg(x), avg_pool2d(x, {3, 2}, {2, 1}), 0, 0);
  EXPECT_EQ(global(x).shape(), (Shape{2, 3, 1, 1}));
  EXPECT_EQ(max.str(), "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1)");
  EXPECT_EQ(avg.str(),
            "AvgPool2d(kernel_size=(3, 2), stride=(2, 1), padding=0, count_include_pad=true)");
  EXPECT_EQ(MaxPool2d(2).str(), "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1)");
  EXPECT_EQ(global.str(), "AdaptiveAvgPool2d(output_size=1)");
  EXPECT_EQ(BatchNorm2d(16).str(),
            "BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true)");
  expect_error([] { MaxPool2d(0); }, {"MaxPool2d", "kernel size"});
  expect_error([] { AdaptiveAvgPool2d({2, 0}); }, {"AdaptiveAvgPool2d", "output size"});
}

TEST(DropoutLayer, SeededAndIdentityInEval) {
  Tensor x = ones({64, 16});
  Dropout a(0.25f, /*seed=*/9), b(0.25f, 9);
  std::vector<float> first = a(x).to_vector();
  EXPECT_EQ(first, b(x).to_vector());
  EXPECT_NE(first, a(x).to_vector());  // a fresh mask each step
  a.eval();
  EXPECT_TRUE(a(x).same(x));
  EXPECT_EQ(a.str(), "Dropout(p=0.25)");
  expect_error([] { Dropout(1.5f); }, {"Dropout", "1.5"});
}

TEST(ActivationLayers, ForwardAndNames) {
  Tensor x = from_vector({-1.0f, 0.5f, 2.0f});
  expect_close(GELU()(x), gelu(x), 0, 0);
  expect_close(GELU("tanh")(x), gelu(x, "tanh"), 0, 0);
  expect_close(LeakyReLU(0.2f)(x), {-0.2f, 0.5f, 2.0f}, 1e-7f, 0);
  EXPECT_EQ(GELU("tanh").str(), "GELU(approximate='tanh')");
  EXPECT_EQ(LeakyReLU().str(), "LeakyReLU(negative_slope=0.01)");
  expect_error([] { GELU("erf"); }, {"GELU", "erf"});
}

TEST(NormPoolLayers, SmallModelTrains) {
  // BatchNorm -> LeakyReLU -> MaxPool -> Dropout -> global pool -> Linear, fitting
  // fixed random targets; a few SGD steps must lower the loss.
  Generator gen(4);
  Sequential model{std::make_shared<BatchNorm2d>(3),
                   std::make_shared<LeakyReLU>(0.1f),
                   std::make_shared<MaxPool2d>(2),
                   std::make_shared<Dropout>(0.1f, 1),
                   std::make_shared<AdaptiveAvgPool2d>(2),
                   std::make_shared<Flatten>(),
                   std::make_shared<Linear>(12, 2, true, gen)};
  Tensor x = randn({16, 3, 8, 8}, gen), target = randn({16, 2}, gen);
  SGD sgd(model.parameters(), SGDOptions{0.1f});
  auto loss_fn = [&] {
    Tensor diff = model(x) - target;
    return mean(diff * diff);
  };
  float first = loss_fn().item();
  for (int step = 0; step < 30; ++step) {
    sgd.zero_grad();
    Tensor loss = loss_fn();
    loss.backward();
    sgd.step();
  }
  model.eval();
  float last = loss_fn().item();
  EXPECT_LT(last, first);
  auto keys = names(model.named_buffers());
  EXPECT_EQ(keys.front(), "0.running_mean");
}

}  // namespace
}  // namespace bridle
