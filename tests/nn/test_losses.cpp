// Loss modules: each gives its function's value and gradient with the options it
// holds, keeps its weights as buffers, prints its options, and refuses a call
// without a target.
#include <gtest/gtest.h>

#include "../test_util.h"

namespace bridle {
namespace {

using testing::expect_close;
using testing::expect_error;

TEST(LossModules, EqualTheirFunctions) {
  Generator gen(11);
  Tensor logits = randn({6, 5}, gen);
  Tensor classes = from_vector(std::vector<int64_t>{0, 4, 2, -100, 1, 3});
  Tensor weight = rand({5}, gen) + 0.5f;
  CrossEntropyOptions ce{.reduction = Reduction::kSum, .weight = weight, .label_smoothing = 0.1f};
  CrossEntropyLoss ce_loss(ce);
  expect_close(ce_loss(logits, classes), cross_entropy(logits, classes, ce), 0, 0);

  NllLossOptions nll{.weight = weight};
  NLLLoss nll_loss_module(nll);
  Tensor log_p = log_softmax(logits, 1);
  expect_close(nll_loss_module(log_p, classes), nll_loss(log_p, classes, nll), 0, 0);

  Tensor multi_hot = rand({6, 5}, gen);
  for (int64_t i = 0; i < multi_hot.numel(); ++i)
    multi_hot.data<float>()[i] = multi_hot.data<float>()[i] > 0.5f ? 1.0f : 0.0f;
  BinaryCrossEntropyOptions bce{.pos_weight = full({5}, 2.0f)};
  BCEWithLogitsLoss bce_loss(bce);
  expect_close(bce_loss(logits, multi_hot),
               binary_cross_entropy_with_logits(logits, multi_hot, bce), 0, 0);

  FocalLossOptions focal{.alpha = 0.5f, .gamma = 1.5f};
  FocalLoss focal_loss_module(focal);
  Tensor valid = from_vector(std::vector<int64_t>{0, 4, 2, 2, 1, 3});
  expect_close(focal_loss_module(logits, valid), focal_loss(logits, valid, focal), 0, 0);
}

TEST(LossModules, GradientFlowsToTheInput) {
  Generator gen(12);
  Tensor logits = randn({4, 3}, gen, TensorOptions().with_requires_grad());
  Tensor targets = from_vector(std::vector<int64_t>{2, 0, 1, 1});
  CrossEntropyLoss criterion;
  criterion(logits, targets).backward();
  // d mean CE / d z = (softmax(z) - onehot) / B
  Tensor expected = softmax(logits.detach(), 1);
  for (int64_t b = 0; b < 4; ++b) {
    const auto y = static_cast<int64_t>(targets.at({b}));
    expected.set({b, y}, expected.at({b, y}) - 1.0);
  }
  expect_close(logits.grad(), expected * 0.25f, 1e-6f, 1e-5f);
}

TEST(LossModules, WeightsAreBuffersAndOptionsPrint) {
  CrossEntropyLoss weighted({.weight = ones({10}), .label_smoothing = 0.1f});
  auto buffers = weighted.named_buffers();
  ASSERT_EQ(buffers.size(), 1u);
  EXPECT_EQ(buffers[0].first, "weight");
  EXPECT_TRUE(weighted.parameters().empty());
  EXPECT_EQ(weighted.str(),
            "CrossEntropyLoss(reduction=mean, ignore_index=-100, label_smoothing=0.1, "
            "weight=[10])");
  EXPECT_TRUE(CrossEntropyLoss().named_buffers().empty());
  BCEWithLogitsLoss bce({.reduction = Reduction::kNone, .pos_weight = ones({3})});
  EXPECT_EQ(bce.str(), "BCEWithLogitsLoss(reduction=none, pos_weight=[3])");
  EXPECT_EQ(bce.named_buffers()[0].first, "pos_weight");
}

TEST(LossModules, BadCallsAreClearErrors) {
  CrossEntropyLoss criterion;
  Module& as_module = criterion;
  expect_error([&] { as_module.forward(zeros({2, 3})); }, {"CrossEntropyLoss", "(input, target)"});
  expect_error(
      [&] {
        criterion(zeros({2, 3}), from_vector(std::vector<int64_t>{0, 3}));
      },
      {"target 3", "out of range"});
}

}  // namespace
}  // namespace bridle
