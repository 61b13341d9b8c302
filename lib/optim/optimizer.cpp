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

}  // namespace bridle
