// Optimizer: the base of every optimizer. It holds the parameters it updates;
// step() reads their .grad and updates them in place, outside autograd.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace bridle {

class Optimizer {
 public:
  explicit Optimizer(std::vector<Tensor> params);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  // Zeroes every parameter's gradient (in place, or drops it with set_to_none).
  void zero_grad(bool set_to_none = false);
  const std::vector<Tensor>& params() const { return params_; }

 protected:
  std::vector<Tensor> params_;
};

}  // namespace bridle
