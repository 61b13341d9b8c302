// Optimizer: the base of every optimizer. It holds the parameters it updates;
// step() reads their .grad and updates them in place, outside autograd.
//
// state() / load_state() expose what an optimizer must carry across a restart:
// its type, step count, scalar hyper-parameters and per-parameter tensors (SGD's
// momentum buffers), indexed like params(). lib/io/checkpoint.h writes them to
// disk, keyed by the parameters' names.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace bridle {

struct OptimizerState {
  std::string type;                               // "SGD"; load_state checks it
  int64_t step_count = 0;                         // step() calls so far
  std::map<std::string, double> hyperparameters;  // "lr", "momentum", ...; bools as 0/1
  // Per-parameter tensors by kind, each vector indexed like params(), e.g.
  // per_parameter["momentum_buffer"][i]. An entry is undefined where the optimizer
  // has none yet (before the first step, or for a parameter no gradient reached).
  std::map<std::string, std::vector<Tensor>> per_parameter;
};

class Optimizer {
 public:
  explicit Optimizer(std::vector<Tensor> params);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  // Zeroes every parameter's gradient (in place, or drops it with set_to_none).
  void zero_grad(bool set_to_none = false);
  const std::vector<Tensor>& params() const { return params_; }
  int64_t step_count() const { return step_count_; }

  // A snapshot of the optimizer's state (its tensors are copies). The base
  // class throws: an optimizer that can be checkpointed overrides both.
  virtual OptimizerState state() const;
  // Restores a state from state(): validates everything first, so a bad state
  // throws bridle::Error and leaves the optimizer unchanged. Hyper-parameters
  // are restored too (as in PyTorch's load_state_dict).
  virtual void load_state(const OptimizerState& state);

 protected:
  std::vector<Tensor> params_;
  int64_t step_count_ = 0;  // a subclass's step() increments it
};

}  // namespace bridle
