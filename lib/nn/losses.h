// Loss modules: the losses of ops/ held with their options, as PyTorch's
// nn.CrossEntropyLoss and friends. A loss is called with (input, target):
//
//   bridle::CrossEntropyLoss criterion({.label_smoothing = 0.1f});
//   bridle::Tensor loss = criterion(model.forward(x), y);
//
// Class weights (and BCE's weight and pos_weight) are registered as buffers, as
// PyTorch does, so they travel with the module into checkpoints and its str().
#pragma once

#include <string>

#include "nn/module.h"
#include "ops/binary_cross_entropy.h"
#include "ops/cross_entropy.h"

namespace bridle {

// The base of the loss modules: forward takes the input and the target.
class Loss : public Module {
 public:
  using Module::Module;
  virtual Tensor forward(const Tensor& input, const Tensor& target) = 0;
  Tensor operator()(const Tensor& input, const Tensor& target) { return forward(input, target); }
  // A loss needs its target: the one-argument form is an error naming the module.
  Tensor forward(const Tensor& input) override;
};

// cross_entropy(input [B, C], target [B] classes or [B, C] probabilities, options).
class CrossEntropyLoss : public Loss {
 public:
  explicit CrossEntropyLoss(CrossEntropyOptions options = {});
  using Loss::forward;
  Tensor forward(const Tensor& input, const Tensor& target) override;
  const CrossEntropyOptions& options() const { return options_; }

 protected:
  std::string extra_repr() const override;

 private:
  CrossEntropyOptions options_;
};

// nll_loss(input [B, C] log-probabilities, target [B], options).
class NLLLoss : public Loss {
 public:
  explicit NLLLoss(NllLossOptions options = {});
  using Loss::forward;
  Tensor forward(const Tensor& input, const Tensor& target) override;

 protected:
  std::string extra_repr() const override;

 private:
  NllLossOptions options_;
};

// binary_cross_entropy_with_logits(input, target of the same shape, options).
class BCEWithLogitsLoss : public Loss {
 public:
  explicit BCEWithLogitsLoss(BinaryCrossEntropyOptions options = {});
  using Loss::forward;
  Tensor forward(const Tensor& input, const Tensor& target) override;

 protected:
  std::string extra_repr() const override;

 private:
  BinaryCrossEntropyOptions options_;
};

// focal_loss(input [B, C], target [B] classes or [B, C] probabilities, options).
class FocalLoss : public Loss {
 public:
  explicit FocalLoss(FocalLossOptions options = {});
  using Loss::forward;
  Tensor forward(const Tensor& input, const Tensor& target) override;

 protected:
  std::string extra_repr() const override;

 private:
  FocalLossOptions options_;
};

}  // namespace bridle
