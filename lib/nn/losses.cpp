#include "nn/losses.h"

#include <fmt/format.h>

#include "core/error.h"

namespace bridle {

namespace {

// ", weight=[10]" for a defined tensor option, "" otherwise.
std::string tensor_repr(const char* name, const Tensor& t) {
  return t.defined() ? fmt::format(", {}={}", name, shape_str(t.shape())) : "";
}

}  // namespace

Tensor Loss::forward(const Tensor&) {
  BRIDLE_FAIL("{}: a loss takes (input, target); call it with both", type_name());
}

CrossEntropyLoss::CrossEntropyLoss(CrossEntropyOptions options)
    : Loss("CrossEntropyLoss"), options_(std::move(options)) {
  if (options_.weight.defined()) options_.weight = register_buffer("weight", options_.weight);
}

Tensor CrossEntropyLoss::forward(const Tensor& input, const Tensor& target) {
  return cross_entropy(input, target, options_);
}

std::string CrossEntropyLoss::extra_repr() const {
  return fmt::format("reduction={}, ignore_index={}, label_smoothing={}{}",
                     reduction_name(options_.reduction), options_.ignore_index,
                     options_.label_smoothing, tensor_repr("weight", options_.weight));
}

NLLLoss::NLLLoss(NllLossOptions options) : Loss("NLLLoss"), options_(std::move(options)) {
  if (options_.weight.defined()) options_.weight = register_buffer("weight", options_.weight);
}

Tensor NLLLoss::forward(const Tensor& input, const Tensor& target) {
  return nll_loss(input, target, options_);
}

std::string NLLLoss::extra_repr() const {
  return fmt::format("reduction={}, ignore_index={}{}", reduction_name(options_.reduction),
                     options_.ignore_index, tensor_repr("weight", options_.weight));
}

BCEWithLogitsLoss::BCEWithLogitsLoss(BinaryCrossEntropyOptions options)
    : Loss("BCEWithLogitsLoss"), options_(std::move(options)) {
  if (options_.weight.defined()) options_.weight = register_buffer("weight", options_.weight);
  if (options_.pos_weight.defined())
    options_.pos_weight = register_buffer("pos_weight", options_.pos_weight);
}

Tensor BCEWithLogitsLoss::forward(const Tensor& input, const Tensor& target) {
  return binary_cross_entropy_with_logits(input, target, options_);
}

std::string BCEWithLogitsLoss::extra_repr() const {
  return fmt::format("reduction={}{}{}", reduction_name(options_.reduction),
                     tensor_repr("weight", options_.weight),
                     tensor_repr("pos_weight", options_.pos_weight));
}

FocalLoss::FocalLoss(FocalLossOptions options) : Loss("FocalLoss"), options_(std::move(options)) {
  if (options_.class_alpha.defined())
    options_.class_alpha = register_buffer("class_alpha", options_.class_alpha);
}

Tensor FocalLoss::forward(const Tensor& input, const Tensor& target) {
  return focal_loss(input, target, options_);
}

std::string FocalLoss::extra_repr() const {
  return fmt::format("gamma={}, alpha={}, reduction={}{}", options_.gamma, options_.alpha,
                     reduction_name(options_.reduction),
                     tensor_repr("class_alpha", options_.class_alpha));
}

}  // namespace bridle
