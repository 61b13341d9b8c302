// Optimizer base; see optimizer.h.
#include "optim/optimizer.h"

namespace bridle {

Optimizer::Optimizer(std::vector<Tensor> params) : params_(std::move(params)) {
  BRIDLE_CHECK(!params_.empty(), "optimizer: got an empty parameter list");
  for (size_t i = 0; i < params_.size(); ++i)
    BRIDLE_CHECK(params_[i].defined() && params_[i].requires_grad() && params_[i].is_leaf(),
                 "optimizer: parameter {} must be a leaf tensor that requires grad", i);
}

void Optimizer::zero_grad(bool set_to_none) {
  for (Tensor& p : params_) p.zero_grad(set_to_none);
}

OptimizerState Optimizer::state() const {
  BRIDLE_FAIL(
      "Optimizer::state: this optimizer does not implement state() and load_state(), so it "
      "cannot be checkpointed");
}

void Optimizer::load_state(const OptimizerState& state) {
  BRIDLE_FAIL(
      "Optimizer::load_state: this optimizer does not implement state() and load_state(), so a "
      "{} state cannot be loaded into it",
      state.type);
}

}  // namespace bridle
